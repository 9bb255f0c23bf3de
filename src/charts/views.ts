/**
 * Views of a large chart, for reading it like the patent's figures: a chart
 * (./graph.ts) in, a smaller chart out, which the drawing exporters (mermaid,
 * dot, svg) draw as they draw any chart.
 *
 *   full         the machine, every state and transition
 *   overview     the machine with its retry states, its cancel arrows and its
 *                relay loops (a chip session's frames passed on) folded: each
 *                phase (a top-level composite, or the machine for its
 *                top-level states) gets a note that names, as text, which
 *                steps retry after a backoff, where a cancel goes from where,
 *                and which states relay frames; a composite inside a phase
 *                (preflight, uploading, downloading, the rollback's source and
 *                destination) is one state, its inside left to the phase views
 *   source       the migration's source phase, the patent's Fig. 3 (S1-S8)
 *   destination  the migration's destination phase, the patent's Fig. 4 (S9-S17)
 *
 * A phase view keeps the states whose protocol step (the step declarations)
 * lies in the phase, their composites, and the final states they reach; a
 * state outside it where one of its arrows begins or ends is drawn as a
 * reference (`stub`), so the view drops no arrow that touches the phase; then
 * it folds retries and cancels like the overview.
 */
import { STEPS, type Step } from '../protocol/steps.ts';
import { isWithin, stateName, transitionLabel, type Chart, type ChartState, type ChartTransition } from './graph.ts';

export const CHART_VIEWS = ['full', 'overview', 'source', 'destination'] as const;
export type ChartView = (typeof CHART_VIEWS)[number];

export function isChartView(view: string): view is ChartView {
  return (CHART_VIEWS as readonly string[]).includes(view);
}

/** The phase views: the steps each keeps (first to last, in protocol order), and the patent figure it reads as. */
export const PHASES = {
  source: { from: 'S1', to: 'S8', title: 'source phase, S1-S8 (Fig. 3)' },
  destination: { from: 'S9', to: 'S17', title: 'destination phase, S9-S17 (Fig. 4)' },
} as const;

/** The event a cancel arrives as; the one a retry state waits for. */
const CANCEL_EVENT = 'CANCEL_REQUESTED';
const RETRY_EVENT = 'RETRY_DUE';

const eventOf = (t: ChartTransition): string | null => (t.trigger.kind === 'event' ? t.trigger.event : null);

/** A retry state: a simple state left by RETRY_DUE (the backoff of the step it returns to). */
function isRetryState(chart: Chart, s: ChartState): boolean {
  return s.children.length === 0 && chart.transitions.some((t) => t.source === s.path && eventOf(t) === RETRY_EVENT);
}

/** In the overview, a composite this deep (keys from the root) is one state; its inside is drawn in the phase views and the full chart. */
const OVERVIEW_DEPTH_MAX = 2;

/** The chart with every composite at OVERVIEW_DEPTH_MAX drawn as one state: arrows to and from its inside end at it, arrows inside it go. */
function collapseDeep(chart: Chart): Chart {
  const collapsed = [...chart.states.values()].filter((s) => s.keys.length === OVERVIEW_DEPTH_MAX && s.children.length > 0);
  const ownerOf = (path: string) => collapsed.find((c) => isWithin(path, c.path))?.path ?? path;
  const states = new Map<string, ChartState>();
  for (const [path, s] of chart.states) {
    if (ownerOf(path) !== path) continue;
    const box = collapsed.find((c) => c.path === path);
    if (box === undefined) states.set(path, s);
    else {
      const inside = [...chart.states.keys()].filter((p) => p !== path && isWithin(p, path)).length;
      states.set(path, { ...box, kind: 'atomic', children: [], initial: null, inside });
    }
  }
  const transitions: ChartTransition[] = [];
  for (const t of chart.transitions) {
    const source = ownerOf(t.source);
    const targets = t.targets.map(ownerOf);
    const within = source !== t.source && (targets.length === 0 || targets.every((p) => p === source));
    if (!within) transitions.push({ ...t, source, targets });
  }
  return { ...chart, states, transitions };
}

/** A relay: a simple state passing a frame of its chip session on (`relayToChip`, `relayToSam`), no state change. */
function isRelay(chart: Chart, t: ChartTransition): boolean {
  return (
    t.targets.length === 0 && chart.states.get(t.source)!.children.length === 0 && t.actions.length > 0 && t.actions.every((a) => a.type.startsWith('relay'))
  );
}

/** Where a folded transition's note goes: its phase, the top-level composite it lies in, or the machine. */
function phaseOf(chart: Chart, path: string): string {
  const top = chart.states.get(path.split('.')[0]!);
  return top !== undefined && !top.stub && top.children.length > 0 ? top.path : '';
}

const pathName = (chart: Chart, path: string): string => (path === '' ? chart.machine : stateName(chart.states.get(path)!));

/** The view `view` of a chart. `full` is the chart itself. */
export function chartView(chart: Chart, view: ChartView): Chart {
  if (view === 'full') return chart;
  if (view === 'overview') {
    return { ...collapseDeep(foldRetriesAndCancels(chart, true)), title: `${chart.machine}: overview (retries, cancels and relays folded into notes)` };
  }
  const phase = foldRetriesAndCancels(phaseView(chart, PHASES[view].from, PHASES[view].to), false);
  // A reference only a folded arrow touched goes with it.
  const used = new Set(phase.transitions.flatMap((t) => [t.source, ...t.targets]));
  const states = new Map([...phase.states].filter(([path, s]) => !s.stub || used.has(path)));
  const root = states.get('')!;
  states.set('', { ...root, children: root.children.filter((c) => states.has(c)) });
  return { ...phase, states, title: `${chart.machine}: ${PHASES[view].title}` };
}

/**
 * The chart without its retry states and its cancel arrows (and, with
 * `relays`, its relay loops), each phase's folded transitions in a note of
 * that phase.
 */
function foldRetriesAndCancels(chart: Chart, relays: boolean): Chart {
  const retry = new Set([...chart.states.values()].filter((s) => isRetryState(chart, s)).map((s) => s.path));
  const touchesRetry = (t: ChartTransition) => retry.has(t.source) || t.targets.some((p) => retry.has(p));
  const isCancel = (t: ChartTransition) => eventOf(t) === CANCEL_EVENT;
  const kept = chart.transitions.filter((t) => !touchesRetry(t) && !isCancel(t) && !(relays && isRelay(chart, t)));
  const notes = new Map<string, string[]>();
  const byPhase = new Map<string, ChartTransition[]>();
  for (const t of chart.transitions) {
    if (kept.includes(t)) continue;
    const phase = phaseOf(chart, t.source);
    byPhase.set(phase, [...(byPhase.get(phase) ?? []), t]);
  }
  for (const [phase, list] of byPhase) notes.set(phase, foldedNote(chart, list, retry));
  const states = new Map([...chart.states].filter(([path]) => !retry.has(path)));
  for (const [path, s] of states) if (s.children.some((c) => retry.has(c))) states.set(path, { ...s, children: s.children.filter((c) => !retry.has(c)) });
  return { ...chart, states, transitions: kept, notes };
}

/**
 * A phase's note: the steps that retry (the states RETRY_DUE returns to), then
 * each cancel (`CANCEL_REQUESTED [guard] -> target` or `/ actions`) with the
 * states it leaves from; a retry state's cancel is its step's.
 */
function foldedNote(chart: Chart, list: ChartTransition[], retry: Set<string>): string[] {
  const lines: string[] = [];
  const retried = [...new Set(list.filter((t) => eventOf(t) === RETRY_EVENT).flatMap((t) => t.targets))];
  if (retried.length > 0) {
    lines.push('retried after a backoff (STEP_FAILED, then RETRY_DUE):');
    lines.push(...wrap(retried.map((p) => pathName(chart, p))));
  }
  const returnsTo = (path: string) => chart.transitions.find((t) => t.source === path && eventOf(t) === RETRY_EVENT)?.targets[0] ?? path;
  const cancels = new Map<string, Set<string>>();
  for (const t of list) {
    if (eventOf(t) !== CANCEL_EVENT) continue;
    const outcome =
      t.targets.length > 0
        ? `${transitionLabel(t)} -> ${t.targets.map((p) => pathName(chart, p)).join(', ')}`
        : `${transitionLabel(t)} / ${t.actions.map((a) => a.type).join(', ')}`;
    const from = retry.has(t.source) ? returnsTo(t.source) : t.source;
    cancels.set(outcome, (cancels.get(outcome) ?? new Set()).add(pathName(chart, from)));
  }
  for (const [outcome, from] of cancels) lines.push(`${outcome}, from:`, ...wrap([...from]));
  const relayed = [...new Set(list.filter((t) => isRelay(chart, t)).map((t) => pathName(chart, t.source)))];
  if (relayed.length > 0)
    lines.push(`relays its session's frames (${[...new Set(list.filter((t) => isRelay(chart, t)).map(eventOf))].join(', ')}) in:`, ...wrap(relayed));
  const other = list.filter((t) => eventOf(t) !== CANCEL_EVENT && eventOf(t) !== RETRY_EVENT && !isRelay(chart, t) && !t.targets.some((p) => retry.has(p)));
  for (const t of other) lines.push(`${transitionLabel(t)}: from ${pathName(chart, t.source)}`);
  return lines;
}

/** Names, a few to a line (a note stays narrow). */
function wrap(names: string[], perLine = 3): string[] {
  const lines: string[] = [];
  for (let i = 0; i < names.length; i += perLine) lines.push(`  ${names.slice(i, i + perLine).join(', ')}`);
  return lines;
}

/** The states whose step lies between `from` and `to`, their composites, the final states they reach, and references for the rest. */
function phaseView(chart: Chart, from: Step, to: Step): Chart {
  const steps = new Set<string>(STEPS.slice(STEPS.indexOf(from), STEPS.indexOf(to) + 1));
  const simple = [...chart.states.values()].filter((s) => s.children.length === 0);
  const keep = new Set<string>(['']);
  for (const s of simple)
    if (s.step !== undefined && steps.has(s.step)) for (let p: string | null = s.path; p !== null; p = chart.states.get(p)!.parent) keep.add(p);
  for (const t of chart.transitions) {
    if (!keep.has(t.source)) continue;
    for (const p of t.targets) if (chart.states.get(p)!.kind === 'final') keep.add(p);
  }
  const transitions = chart.transitions.filter((t) => keep.has(t.source) || t.targets.some((p) => keep.has(p)));
  const states = new Map<string, ChartState>();
  for (const [path, s] of chart.states) if (keep.has(path)) states.set(path, { ...s, children: s.children.filter((c) => keep.has(c)) });
  const stubs = new Set(transitions.flatMap((t) => [t.source, ...t.targets]).filter((p) => !keep.has(p)));
  const root = states.get('')!;
  for (const path of stubs) states.set(path, { ...chart.states.get(path)!, parent: '', children: [], initial: null, kind: 'atomic', stub: true });
  // The machine starts outside the phase: the view has no start dot, its arrows come in from references.
  const initial = root.initial !== null && keep.has(root.initial) ? root.initial : null;
  states.set('', { ...root, initial, children: [...root.children.filter((c) => keep.has(c)), ...stubs] });
  return { ...chart, states, transitions };
}
