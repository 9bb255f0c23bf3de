/**
 * A machine as a chart: every state node and every transition of the real
 * machine (`machine.root`, the objects XState runs), walked once into a
 * neutral list that each exporter (json, mermaid, scxml, dot) draws from, so
 * every format shows the same states and the same arrows.
 *
 * A state is named by its path of keys from the machine root, dot-joined
 * (`sourcePhase.uploading`); the root's path is ''. Paths, not XState ids, so
 * a state given its own `id` keeps the name the chart and the live page use.
 */
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

export type StateKind = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

/** What starts a transition: a named event, no event (`always`), a delay (`after`), or a region finishing (`onDone`). */
export type Trigger = { kind: 'event'; event: string } | { kind: 'always' } | { kind: 'after'; delay: number | string } | { kind: 'done' };

/** A named action; `params` as the machine declares them (JSON-safe in this project's machines). */
export interface ChartAction {
  type: string;
  params?: unknown;
}

export interface ChartState {
  /** Dot-joined path from the root; '' for the root. */
  path: string;
  keys: string[];
  key: string;
  kind: StateKind;
  /** XState's id of the node (`migration.sourcePhase`, or the node's own `id`). */
  xstateId: string;
  parent: string | null;
  /** Child paths, in declaration order. */
  children: string[];
  /** Path of the child entered first (compound states). */
  initial: string | null;
  history?: 'shallow' | 'deep';
  /** Where a history state goes when there is no history yet. */
  historyTarget?: string[];
  description?: string;
  /** The protocol step this state belongs to (the protocol table's id, e.g. `S3`), for machines whose states the table names. */
  step?: string;
  tags: string[];
  entry: ChartAction[];
  exit: ChartAction[];
  /** A state outside a view (./views.ts), drawn as a reference where the view's arrows leave it or come from. */
  stub?: true;
  /** A composite a view draws as one state (./views.ts): how many states it holds. */
  inside?: number;
}

export interface ChartTransition {
  source: string;
  trigger: Trigger;
  /** XState's event type of the transition ('' for `always`, `xstate.after.<delay>.<id>` for `after`). */
  eventType: string;
  /** The guard's name (`not(x)`, `and(a, b)` for the built-in combinators), null when unguarded. */
  guard: string | null;
  /** The guard's params, when the machine gives some. */
  guardParams?: unknown;
  /** Target paths; empty: a targetless transition (actions only, no exit or entry). */
  targets: string[];
  actions: ChartAction[];
  reenter: boolean;
  description?: string;
}

export interface Chart {
  /** The machine's id (equal to its name in MODELS). */
  machine: string;
  /** Every state, root first, in document order (parents before children). */
  states: Map<string, ChartState>;
  /** Every transition, per state in document order, each state's in the order XState tries them. */
  transitions: ChartTransition[];
  /** A view's notes (./views.ts), by the composite (or root, '') they are drawn in: the transitions it folds, as text. */
  notes?: Map<string, string[]>;
  /** A view's title, drawn as the chart's caption (the machine's name otherwise). */
  title?: string;
}

/** Limits: a statechart this deep or this large is a mistake, not a chart. */
const CHART_DEPTH_MAX = 32;
const CHART_STATES_MAX = 10_000;

export const pathOf = (node: AnyStateNode): string => node.path.join('.');

/** The name a guard goes by in a chart; XState's `not`/`and`/`or` combinators keep their structure. */
export function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const g = guard as { check?: { name?: string }; guards?: unknown[]; name?: string };
    if (Array.isArray(g.guards) && g.check) {
      const inner = g.guards.map((x) => guardName(x) ?? 'inline');
      const op = g.check.name === 'checkNot' ? 'not' : g.check.name === 'checkAnd' ? 'and' : g.check.name === 'checkOr' ? 'or' : 'guard';
      return `${op}(${inner.join(', ')})`;
    }
    return g.name && g.name !== 'guard' ? g.name : 'inline';
  }
  if (typeof guard === 'object' && typeof (guard as { type?: unknown }).type === 'string') return (guard as { type: string }).type;
  return 'inline';
}

function guardParams(guard: unknown): unknown {
  if (guard && typeof guard === 'object' && 'params' in guard) return (guard as { params?: unknown }).params;
  return undefined;
}

/** A named action from whatever the machine holds: a name, `{ type, params }`, a built-in (`xstate.assign`) or an inline function. */
export function chartAction(action: unknown): ChartAction {
  if (typeof action === 'string') return { type: action };
  if (typeof action === 'function') {
    const f = action as { type?: unknown; name?: string };
    return { type: typeof f.type === 'string' ? f.type : f.name || 'inline' };
  }
  if (action && typeof action === 'object' && typeof (action as { type?: unknown }).type === 'string') {
    const a = action as { type: string; params?: unknown };
    return a.params === undefined || typeof a.params === 'function' ? { type: a.type } : { type: a.type, params: a.params };
  }
  return { type: 'inline' };
}

const toArray = (x: unknown): unknown[] => (x === undefined || x === null ? [] : Array.isArray(x) ? x : [x]);

function kindOf(node: AnyStateNode): StateKind {
  const t = node.type;
  if (t === 'atomic' || t === 'compound' || t === 'parallel' || t === 'final' || t === 'history') return t;
  throw new Error(`state ${node.id} has a type charts do not know: ${String(t)}`);
}

/** Walks the real machine into a chart. */
/** `stepOf`: the protocol step of a state (its path), for the migration machine (the protocol table's states). */
export function chartOf(machine: AnyStateMachine, stepOf?: (path: string) => string | undefined): Chart {
  const states = new Map<string, ChartState>();
  const transitions: ChartTransition[] = [];

  const visit = (node: AnyStateNode, depth: number): void => {
    if (depth > CHART_DEPTH_MAX) throw new Error(`machine ${machine.id} nests deeper than ${CHART_DEPTH_MAX} states`);
    if (states.size >= CHART_STATES_MAX) throw new Error(`machine ${machine.id} has more than ${CHART_STATES_MAX} states`);
    const path = pathOf(node);
    const kind = kindOf(node);
    const children = Object.values(node.states as Record<string, AnyStateNode>);
    const config = node.config as { entry?: unknown; exit?: unknown; target?: unknown };
    const state: ChartState = {
      path,
      keys: [...node.path],
      key: node.path.length === 0 ? machine.id : node.key,
      kind,
      xstateId: node.id,
      parent: node.parent ? pathOf(node.parent) : null,
      children: children.map(pathOf),
      initial: kind === 'compound' && node.initial.target[0] ? pathOf(node.initial.target[0]) : null,
      tags: [...node.tags],
      // From the config, not node.entry: XState adds its own raise/cancel for `after`, which are the delay, not an action.
      entry: toArray(config.entry).map(chartAction),
      exit: toArray(config.exit).map(chartAction),
    };
    if (node.description) state.description = node.description;
    const step = stepOf?.(path);
    if (step) state.step = step;
    if (kind === 'history') {
      state.history = node.history === 'deep' ? 'deep' : 'shallow';
      // A history state's default is config text: a sibling key ('a', 'a.b') or an id ('#m.a').
      state.historyTarget = toArray(config.target).map((t) => historyDefault(machine, node, String(t)));
    }
    states.set(path, state);

    const delays = new Map<string, number | string>((node.after as Array<{ eventType: string; delay: number | string }>).map((t) => [t.eventType, t.delay]));
    const doneEvent = `xstate.done.state.${node.id}`;
    for (const [eventType, list] of node.transitions) {
      const trigger: Trigger = delays.has(eventType)
        ? { kind: 'after', delay: delays.get(eventType)! }
        : eventType === doneEvent
          ? { kind: 'done' }
          : { kind: 'event', event: eventType };
      for (const t of list) transitions.push(transitionOf(path, trigger, eventType, t));
    }
    for (const t of node.always ?? []) transitions.push(transitionOf(path, { kind: 'always' }, '', t));
    for (const child of children) visit(child, depth + 1);
  };
  visit(machine.root, 0);
  return { machine: machine.id, states, transitions };
}

function historyDefault(machine: AnyStateMachine, node: AnyStateNode, target: string): string {
  const found = target.startsWith('#') ? machine.getStateNodeById(target.slice(1)) : node.parent!.states[target.split('.')[0]!];
  if (!found) throw new Error(`history state ${node.id} has an unknown default target ${target}`);
  const rest = target.startsWith('#') ? [] : target.split('.').slice(1);
  return [pathOf(found), ...rest].filter((s) => s !== '').join('.');
}

function transitionOf(source: string, trigger: Trigger, eventType: string, t: AnyTransitionDefinition): ChartTransition {
  const tr: ChartTransition = {
    source,
    trigger,
    eventType,
    guard: guardName(t.guard),
    targets: (t.target ?? []).map(pathOf),
    actions: t.actions.map(chartAction),
    reenter: t.reenter === true,
  };
  const params = guardParams(t.guard);
  if (params !== undefined) tr.guardParams = params;
  if (typeof t.description === 'string') tr.description = t.description;
  return tr;
}

/** How a transition reads on an arrow: `EVENT [guard]`, `always [guard]`, `after 1000 ms [guard]`, `done [guard]`. */
export function transitionLabel(t: ChartTransition): string {
  const trigger =
    t.trigger.kind === 'event'
      ? t.trigger.event
      : t.trigger.kind === 'always'
        ? 'always'
        : t.trigger.kind === 'after'
          ? `after ${typeof t.trigger.delay === 'number' ? `${t.trigger.delay} ms` : t.trigger.delay}`
          : 'done';
  return t.guard === null ? trigger : `${trigger} [${t.guard}]`;
}

/** A state's name as charts label it: its key, with its protocol step when it has one (`lockingSource (S3)`, `sourcePhase (S1-S8)`). */
export function stateName(s: ChartState): string {
  const name = s.step && s.step !== s.key ? `${s.key} (${s.step})` : s.key;
  return s.inside === undefined ? name : `${name}, ${s.inside} states inside`;
}

/** An action as one line of text: `name` or `name {"param":...}`. */
export function actionText(a: ChartAction): string {
  return a.params === undefined ? a.type : `${a.type} ${JSON.stringify(a.params)}`;
}

/** Whether `inner` is `outer` or lies inside it. */
export function isWithin(inner: string, outer: string): boolean {
  return outer === '' || inner === outer || inner.startsWith(`${outer}.`);
}

/**
 * The deepest state that holds both ends of a transition strictly inside it
 * (where the arrow is drawn). Climbs past parallel states, whose body holds
 * only regions.
 */
export function arrowScope(chart: Chart, source: string, target: string): string {
  let scope = chart.states.get(source)!.parent;
  while (scope !== null && !(isWithin(target, scope) && target !== scope)) scope = chart.states.get(scope)!.parent;
  while (scope !== null && chart.states.get(scope)!.kind === 'parallel') scope = chart.states.get(scope)!.parent;
  return scope ?? '';
}
