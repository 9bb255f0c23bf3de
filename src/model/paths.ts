/**
 * Test paths from the statecharts (xstate/graph), and what they cover.
 *
 *   shortest     one shortest path to every reachable state of the chart
 *                (getShortestPaths, from the main input and each variant; the
 *                shortest one per state value kept). It reaches states, not
 *                transitions: a transition between two states already reached
 *                is not on it.
 *   transitions  one path through every transition the model can take
 *                (a breadth-first search that stops at each new transition)
 *   simple       every path from the start without a repeated state
 *                (getSimplePaths' definition, enumerated here over
 *                getAdjacencyMap so it can stop at a bound: `limit` paths)
 *
 * Coverage here is planned coverage: every path replayed on an actor of the
 * very machine the runtime runs, recording the transitions XState reports it
 * took (`@xstate.microstep` inspection records), eventless ones included. It
 * says what the paths would cover if the real parties follow their chart; it
 * can not catch a mistake in the chart. What the real actors took is measured
 * by the model-based runner (src/testing/model.run.ts), and whether each real
 * change is a step the protocol allows, by the abstract model's conformance
 * check (src/model/safety/conformance.ts).
 */
import { createActor, getMicrosteps, type AnyStateMachine, type AnyTransitionDefinition, type EventObject, type SnapshotFrom } from 'xstate';
import { getAdjacencyMap, getShortestPaths, toDirectedGraph, type DirectedGraphNode } from 'xstate/graph';
import { stateName } from '../protocol/stateName.ts';
import type { Model } from './models.ts';

export { stateName };

export const STRATEGIES = ['transitions', 'shortest', 'simple'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** What each strategy promises, in the words the command and the JSON print. */
export const STRATEGY_PROMISE: Record<Strategy, string> = {
  transitions: 'one path through every transition the model can take',
  shortest: 'a shortest path to every reachable state (states, not transitions: use transitions for those)',
  simple: 'every path from the start that repeats no state',
};

export interface ModelPath {
  /** Which input the path starts from (a model's variants; undefined: its main input). */
  variant?: string;
  events: EventObject[];
  /** The state value the path ends in. */
  state: unknown;
}

export function inputOf(model: Model, variant?: string): unknown {
  if (variant === undefined) return model.input;
  const v = model.variants?.find((x) => x.name === variant);
  if (!v) throw new PathSearchError('UNKNOWN_VARIANT', `machine "${model.name}" has no variant "${variant}"`);
  return v.input;
}

export interface Coverage {
  states: { reached: number; total: number };
  transitions: { reached: number; total: number };
  missingTransitions: string[];
}

/**
 * Limits on path search. A search step is one snapshot the search takes from its
 * queue (xstate/graph's `limit`); the migration chart, the largest, needs about
 * 150,000 for `shortest`. Simple paths grow exponentially with the chart: past
 * SIMPLE_PATHS_MAX the search stops and says so (the `limit` option raises it).
 */
export const SEARCH_STEPS_MAX = 1_000_000;
export const SEARCH_STATES_MAX = 20_000;
export const SIMPLE_PATHS_MAX = 5_000;

export type PathSearchCode = 'PATH_LIMIT' | 'SEARCH_LIMIT' | 'UNKNOWN_VARIANT' | 'UNKNOWN_MACHINE';

/** A search that could not finish: names the machine, the bound and how to raise it. */
export class PathSearchError extends Error {
  constructor(
    readonly code: PathSearchCode,
    message: string,
  ) {
    super(message);
    this.name = 'PathSearchError';
  }
}

export interface PathOptions {
  /** simple: the most paths to list before giving up (default SIMPLE_PATHS_MAX). */
  limit?: number;
}

interface TransitionInfo {
  label: string;
}

function walk(node: DirectedGraphNode, out: Map<AnyTransitionDefinition, TransitionInfo>, states: Set<string>): void {
  if (node.stateNode.parent) states.add(node.stateNode.id);
  for (const e of node.edges) {
    const targets = (e.transition.target ?? []).map((t: { id: string }) => t.id).join(',') || '(self)';
    out.set(e.transition, { label: `${e.source.id} --${e.transition.eventType || '(always)'}--> ${targets}` });
  }
  for (const c of node.children) walk(c, out, states);
}

/** Every transition (eventless ones included) and every state of a machine. */
export function machineGraph(machine: AnyStateMachine): { transitions: Map<AnyTransitionDefinition, TransitionInfo>; states: Set<string> } {
  const transitions = new Map<AnyTransitionDefinition, TransitionInfo>();
  const states = new Set<string>();
  walk(toDirectedGraph(machine), transitions, states);
  // toDirectedGraph leaves out eventless transitions: add them from each state node.
  const visit = (sn: AnyStateMachine['root']) => {
    for (const t of sn.always ?? []) {
      const targets = (t.target ?? []).map((x: { id: string }) => x.id).join(',') || '(self)';
      transitions.set(t, { label: `${sn.id} --(always)--> ${targets}` });
    }
    for (const child of Object.values(sn.states ?? {})) visit(child as AnyStateMachine['root']);
  };
  visit(machine.root);
  return { transitions, states };
}

const microsteps = (e: { type: string }) => (e.type === '@xstate.microstep' ? (e as unknown as { _transitions: AnyTransitionDefinition[] })._transitions : []);

/** One event of a replay: the state before and after it (as "phase.state" paths) and the transitions it took. */
export interface ReplayStep {
  event: EventObject;
  from: string;
  to: string;
  transitions: AnyTransitionDefinition[];
}

/** Replays events on a fresh actor of the machine, recording the transitions and states it went through. */
export function replay(
  model: Model,
  events: EventObject[],
  variant?: string,
): { transitions: Set<AnyTransitionDefinition>; states: Set<string>; steps: ReplayStep[]; start: string; final: SnapshotFrom<AnyStateMachine> } {
  const transitions = new Set<AnyTransitionDefinition>();
  const states = new Set<string>();
  let taken: AnyTransitionDefinition[] = [];
  const actor = createActor(model.machine, { input: inputOf(model, variant) as never, inspect: (e) => taken.push(...microsteps(e)) });
  const note = () => {
    for (const n of (actor.getSnapshot() as unknown as { _nodes: Array<{ id: string; parent?: unknown }> })._nodes) if (n.parent) states.add(n.id);
  };
  actor.start();
  note();
  // Eventless transitions out of the initial state are taken on start.
  for (const t of taken) transitions.add(t);
  const start = stateName(actor.getSnapshot().value);
  const steps: ReplayStep[] = [];
  for (const e of events) {
    const from = stateName(actor.getSnapshot().value);
    taken = [];
    actor.send(e as never);
    note();
    for (const t of taken) transitions.add(t);
    steps.push({ event: e, from, to: stateName(actor.getSnapshot().value), transitions: taken });
  }
  const final = actor.getSnapshot();
  actor.stop();
  return { transitions, states, steps, start, final };
}

function enabled(machine: AnyStateMachine, s: SnapshotFrom<AnyStateMachine>, e: EventObject): AnyTransitionDefinition[] {
  if (s.status !== 'active') return [];
  try {
    return machine.getTransitionData(s as never, e as never) ?? [];
  } catch {
    return [];
  }
}

/** The transitions one event takes from a snapshot, eventless ones that follow included (XState reports them). */
function stepTransitions(machine: AnyStateMachine, snap: SnapshotFrom<AnyStateMachine>, e: EventObject): AnyTransitionDefinition[] {
  const taken: AnyTransitionDefinition[] = [];
  const actor = createActor(machine, {
    snapshot: machine.getPersistedSnapshot(snap as never) as never,
    inspect: (ev) => taken.push(...microsteps(ev)),
  });
  actor.start();
  actor.send(e as never);
  actor.stop();
  return taken;
}

const searchLimit = (model: Model, what: string) =>
  new PathSearchError('SEARCH_LIMIT', `machine "${model.name}": the ${what} search passed its bound; its state key (models.ts, serialize) is not finite`);

/** One path through every transition the model's events can reach (breadth first, so each is as short as can be). */
function transitionPaths(model: Model, variant: string | undefined, covered: Set<AnyTransitionDefinition>): ModelPath[] {
  const { machine } = model;
  const start = createActor(machine, { input: inputOf(model, variant) as never }).getSnapshot();
  const seen = new Set<string>([model.serialize(start)]);
  const queue: Array<{ snap: SnapshotFrom<AnyStateMachine>; events: EventObject[] }> = [{ snap: start, events: [] }];
  const paths: ModelPath[] = [];
  for (let head = 0; head < queue.length; head++) {
    if (seen.size > SEARCH_STATES_MAX) throw searchLimit(model, 'transitions');
    const { snap, events } = queue[head]!;
    for (const e of model.events(snap)) {
      const direct = enabled(machine, snap, e);
      if (direct.length === 0) continue;
      const steps = getMicrosteps(machine, snap as never, e as never);
      const next = steps[steps.length - 1]![0] as SnapshotFrom<AnyStateMachine>;
      const ts = steps.length > 1 ? stepTransitions(machine, snap, e) : direct;
      const path = [...events, e];
      if (ts.some((t) => !covered.has(t))) {
        for (const t of ts) covered.add(t);
        paths.push({ variant, events: path, state: next.value });
      }
      const key = model.serialize(next);
      if (!seen.has(key)) {
        seen.add(key);
        queue.push({ snap: next, events: path });
      }
    }
  }
  // Drop paths that are a prefix of a longer one: the longer one covers them.
  const sig = (p: ModelPath) => p.events.map((e) => JSON.stringify(e)).join('\n');
  const all = paths.map(sig);
  return paths.filter((_p, i) => !all.some((other, j) => j !== i && other.length > all[i]!.length && other.startsWith(`${all[i]}\n`)));
}

const variantsOf = (model: Model) => [undefined, ...(model.variants ?? []).map((v) => v.name)];

function traversal(model: Model, variant: string | undefined) {
  return {
    input: inputOf(model, variant) as never,
    events: model.events as never,
    serializeState: ((s: SnapshotFrom<AnyStateMachine>) => model.serialize(s)) as never,
    limit: SEARCH_STEPS_MAX,
  };
}

/** Runs an xstate/graph search, naming the machine if it passes its bound. */
function bounded<T>(model: Model, what: string, search: () => T): T {
  try {
    return search();
  } catch (e) {
    if ((e as Error).message === 'Traversal limit exceeded') throw searchLimit(model, what);
    throw e;
  }
}

/** A shortest path to each state value the chart can reach: the main input's first, then what only a variant reaches. */
function shortestPaths(model: Model): ModelPath[] {
  const best = new Map<string, ModelPath>();
  for (const variant of variantsOf(model)) {
    const found = bounded(model, 'shortest', () => getShortestPaths(model.machine, traversal(model, variant)));
    for (const p of found) {
      const events = p.steps.map((s) => s.event as EventObject).filter((e) => !e.type.startsWith('xstate.'));
      const key = stateName(p.state.value);
      const had = best.get(key);
      if (!had || had.events.length > events.length) best.set(key, { variant, events, state: p.state.value });
    }
  }
  return [...best.values()];
}

/** Every simple path from the start (each prefix of a depth-first walk that never revisits a state), at most `limit`. */
function simplePaths(model: Model, limit: number): ModelPath[] {
  const paths: ModelPath[] = [];
  for (const variant of variantsOf(model)) {
    const options = traversal(model, variant);
    type Edge = { event: EventObject; state: SnapshotFrom<AnyStateMachine> };
    const adjacency = bounded(model, 'simple', () => getAdjacencyMap(model.machine, options)) as unknown as Record<
      string,
      { transitions: Record<string, Edge> } | undefined
    >;
    const start = createActor(model.machine, { input: options.input }).getSnapshot();
    const onPath = new Set<string>();
    const visit = (key: string, value: unknown, events: EventObject[]) => {
      if (paths.length >= limit) {
        throw new PathSearchError(
          'PATH_LIMIT',
          `machine "${model.name}" has more than ${limit} simple paths (strategy simple, limit ${limit}); ` +
            'raise it with --limit N (paths(…, { limit }) in valmove/testing), or use --strategy transitions or shortest',
        );
      }
      paths.push({ variant, events, state: value });
      onPath.add(key);
      for (const { event, state } of Object.values(adjacency[key]?.transitions ?? {})) {
        const next = model.serialize(state);
        if (!onPath.has(next)) visit(next, state.value, [...events, event]);
      }
      onPath.delete(key);
    };
    visit(model.serialize(start), start.value, []);
  }
  return paths;
}

/** Paths found so far, by model, strategy and limit: a search is seconds for the migration chart, and its result never changes. */
const found = new WeakMap<Model, Map<string, ModelPath[]>>();

/** The paths of a strategy through a model (a fresh list each call; the paths themselves are shared, do not change them). */
export function generatePaths(model: Model, strategy: Strategy, options: PathOptions = {}): ModelPath[] {
  const key = `${strategy}/${strategy === 'simple' ? (options.limit ?? SIMPLE_PATHS_MAX) : ''}`;
  const known = found.get(model) ?? new Map<string, ModelPath[]>();
  found.set(model, known);
  const paths = known.get(key) ?? search(model, strategy, options);
  known.set(key, paths);
  return [...paths];
}

function search(model: Model, strategy: Strategy, options: PathOptions): ModelPath[] {
  switch (strategy) {
    case 'transitions': {
      // The main input first, then each variant for what only it can reach.
      const covered = new Set<AnyTransitionDefinition>();
      return variantsOf(model).flatMap((variant) => transitionPaths(model, variant, covered));
    }
    case 'shortest':
      return shortestPaths(model);
    case 'simple':
      return simplePaths(model, options.limit ?? SIMPLE_PATHS_MAX);
  }
}

export function coverage(model: Model, paths: ModelPath[]): Coverage {
  const graph = machineGraph(model.machine);
  const reachedT = new Set<AnyTransitionDefinition>();
  const reachedS = new Set<string>();
  for (const p of paths) {
    const r = replay(model, p.events, p.variant);
    for (const t of r.transitions) {
      reachedT.add(t);
      // A transient state (left at once by an eventless transition) was reached if a transition left it.
      reachedS.add((t as unknown as { source: { id: string } }).source.id);
    }
    for (const s of r.states) reachedS.add(s);
  }
  const missing = [...graph.transitions.entries()].filter(([t]) => !reachedT.has(t)).map(([, info]) => info.label);
  return {
    states: { reached: [...graph.states].filter((s) => reachedS.has(s)).length, total: graph.states.size },
    transitions: { reached: graph.transitions.size - missing.length, total: graph.transitions.size },
    missingTransitions: missing,
  };
}
