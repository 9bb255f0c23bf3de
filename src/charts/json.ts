/**
 * The chart as a machine config (JSON): the form Stately's editor imports and
 * `createMachine(json)` accepts. States, initial states, types, descriptions,
 * tags, entry/exit and every transition (`on`, `always`, `after`, `onDone`)
 * with its targets, guard and actions by name. Targets are absolute
 * (`#migration.sourcePhase.uploading`), so they resolve wherever the
 * transition sits. Implementations and context are not part of a chart:
 * guards and actions are names (with their params), to be provided as in
 * `setup`. Built-in guard combinators appear by structure (`not(readerSession)`).
 * A state's protocol step (the migration's) is `meta.step`.
 */
import type { Chart, ChartAction, ChartState, ChartTransition } from './graph.ts';

type Json = Record<string, unknown>;

function actionJson(a: ChartAction): unknown {
  return a.params === undefined ? a.type : { type: a.type, params: a.params };
}

function targetRef(chart: Chart, path: string): string {
  return `#${chart.states.get(path)!.xstateId}`;
}

function transitionJson(chart: Chart, t: ChartTransition): Json {
  const out: Json = {};
  if (t.targets.length === 1) out.target = targetRef(chart, t.targets[0]!);
  else if (t.targets.length > 1) out.target = t.targets.map((p) => targetRef(chart, p));
  if (t.guard !== null) out.guard = t.guardParams === undefined ? t.guard : { type: t.guard, params: t.guardParams };
  if (t.actions.length > 0) out.actions = t.actions.map(actionJson);
  if (t.reenter) out.reenter = true;
  if (t.description) out.description = t.description;
  return out;
}

function push(group: Json, key: string, value: Json): void {
  ((group[key] ??= []) as Json[]).push(value);
}

function stateJson(chart: Chart, s: ChartState, byState: Map<string, ChartTransition[]>): Json {
  const out: Json = {};
  if (s.path === '') out.id = chart.machine;
  else if (s.xstateId !== [chart.machine, ...s.keys].join('.')) out.id = s.xstateId;
  if (s.kind === 'parallel' || s.kind === 'final' || s.kind === 'history') out.type = s.kind;
  if (s.kind === 'history') {
    if (s.history === 'deep') out.history = 'deep';
    if (s.historyTarget && s.historyTarget.length > 0) out.target = s.historyTarget.map((p) => targetRef(chart, p));
  }
  if (s.initial !== null) out.initial = chart.states.get(s.initial)!.key;
  if (s.description) out.description = s.description;
  // The protocol step rides in `meta`, which XState and Stately's editor keep and never act on.
  if (s.step) out.meta = { step: s.step };
  if (s.tags.length > 0) out.tags = s.tags;
  if (s.entry.length > 0) out.entry = s.entry.map(actionJson);
  if (s.exit.length > 0) out.exit = s.exit.map(actionJson);

  const on: Json = {};
  const after: Json = {};
  const always: Json[] = [];
  const onDone: Json[] = [];
  for (const t of byState.get(s.path) ?? []) {
    const tj = transitionJson(chart, t);
    if (t.trigger.kind === 'event') push(on, t.trigger.event, tj);
    else if (t.trigger.kind === 'after') push(after, String(t.trigger.delay), tj);
    else if (t.trigger.kind === 'always') always.push(tj);
    else onDone.push(tj);
  }
  if (Object.keys(on).length > 0) out.on = on;
  if (Object.keys(after).length > 0) out.after = after;
  if (always.length > 0) out.always = always;
  if (onDone.length > 0) out.onDone = onDone;

  if (s.children.length > 0) {
    const states: Json = {};
    for (const c of s.children) {
      const child = chart.states.get(c)!;
      states[child.key] = stateJson(chart, child, byState);
    }
    out.states = states;
  }
  return out;
}

/** The machine config of a chart, as a plain object. */
export function chartConfig(chart: Chart): Json {
  const byState = new Map<string, ChartTransition[]>();
  for (const t of chart.transitions) {
    const list = byState.get(t.source) ?? [];
    list.push(t);
    byState.set(t.source, list);
  }
  return stateJson(chart, chart.states.get('')!, byState);
}

export function toJson(chart: Chart): string {
  return `${JSON.stringify(chartConfig(chart), null, 2)}\n`;
}
