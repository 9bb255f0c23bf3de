/**
 * Test paths from the statecharts (xstate/graph), and what they cover.
 *
 *   shortest     getShortestPaths: one shortest path to every distinct state
 *   simple       getSimplePaths: every path without a repeated state (bounded)
 *   transitions  one path through every transition the model can take
 *                (a breadth-first search that stops at each new transition)
 *
 * Coverage here is planned coverage: every path replayed on an actor of the
 * very machine the runtime runs, recording the transitions XState reports it
 * took (`@xstate.microstep` inspection records), eventless ones included. It
 * says what the paths would cover if the real parties follow their chart; it
 * can not catch a mistake in the chart. What the real actors took is measured
 * by the model-based suite (test/model/migration.model.test.ts: the server's
 * migration actor's own inspection records, on the embedded system), and
 * whether each real change is a step the protocol allows, by the abstract
 * model's conformance check (src/model/safety/conformance.ts).
 */
import { createActor, getMicrosteps, type AnyStateMachine, type AnyTransitionDefinition, type EventObject, type SnapshotFrom } from 'xstate';
import { getShortestPaths, getSimplePaths, toDirectedGraph, type DirectedGraphNode } from 'xstate/graph';
import type { Model } from './models.ts';

export type Strategy = 'shortest' | 'simple' | 'transitions';

export interface ModelPath {
  /** Which input the path starts from (a model's variants; undefined: its main input). */
  variant?: string;
  events: EventObject[];
  /** The state value the path ends in. */
  state: unknown;
}

function inputOf(model: Model, variant?: string): unknown {
  return variant ? model.variants?.find((v) => v.name === variant)?.input : model.input;
}

export interface Coverage {
  states: { reached: number; total: number };
  transitions: { reached: number; total: number };
  missingTransitions: string[];
}

/** Limits on path search: a model is small, a search that runs past these is a model bug. */
export const SEARCH_STATES_MAX = 20_000;
export const SIMPLE_PATHS_MAX = 2_000;

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

/** Replays events on a fresh actor of the machine, recording the transitions and states it went through. */
export function replay(
  model: Model,
  events: EventObject[],
  variant?: string,
): { transitions: Set<AnyTransitionDefinition>; states: Set<string>; final: SnapshotFrom<AnyStateMachine> } {
  const transitions = new Set<AnyTransitionDefinition>();
  const states = new Set<string>();
  const actor = createActor(model.machine, {
    input: inputOf(model, variant) as never,
    inspect: (e) => {
      if (e.type === '@xstate.microstep') for (const t of (e as unknown as { _transitions: AnyTransitionDefinition[] })._transitions) transitions.add(t);
    },
  });
  const note = () => {
    for (const n of (actor.getSnapshot() as unknown as { _nodes: Array<{ id: string; parent?: unknown }> })._nodes) if (n.parent) states.add(n.id);
  };
  actor.start();
  note();
  for (const e of events) {
    actor.send(e as never);
    note();
  }
  const final = actor.getSnapshot();
  actor.stop();
  return { transitions, states, final };
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
    inspect: (ev) => {
      if (ev.type === '@xstate.microstep') taken.push(...(ev as unknown as { _transitions: AnyTransitionDefinition[] })._transitions);
    },
  });
  actor.start();
  actor.send(e as never);
  actor.stop();
  return taken;
}

/** One path through every transition the model's events can reach (breadth first, so each is as short as can be). */
function transitionPaths(model: Model, variant?: string, covered = new Set<AnyTransitionDefinition>()): ModelPath[] {
  const { machine } = model;
  const start = createActor(machine, { input: inputOf(model, variant) as never }).getSnapshot();
  const seen = new Map<string, EventObject[]>([[model.serialize(start), []]]);
  const queue: Array<{ snap: SnapshotFrom<AnyStateMachine>; events: EventObject[] }> = [{ snap: start, events: [] }];
  const paths: ModelPath[] = [];
  while (queue.length > 0 && seen.size < SEARCH_STATES_MAX) {
    const { snap, events } = queue.shift()!;
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
        seen.set(key, path);
        queue.push({ snap: next, events: path });
      }
    }
  }
  // Drop paths that are a prefix of a longer one: the longer one covers them.
  const sig = (p: ModelPath) => p.events.map((e) => JSON.stringify(e)).join('\n');
  const all = paths.map(sig);
  return paths.filter((_p, i) => !all.some((other, j) => j !== i && other.length > all[i]!.length && other.startsWith(`${all[i]}\n`)));
}

export function generatePaths(model: Model, strategy: Strategy): ModelPath[] {
  if (strategy === 'transitions') {
    // The main input first, then each variant for what only it can reach.
    const covered = new Set<AnyTransitionDefinition>();
    return [undefined, ...(model.variants ?? []).map((v) => v.name)].flatMap((variant) => transitionPaths(model, variant, covered));
  }
  const opts = {
    input: model.input as never,
    events: model.events as never,
    serializeState: ((s: SnapshotFrom<AnyStateMachine>) => model.serialize(s)) as never,
  };
  const found = strategy === 'shortest' ? getShortestPaths(model.machine, opts) : getSimplePaths(model.machine, { ...opts, limit: SIMPLE_PATHS_MAX } as never);
  return found.map((p) => ({ events: p.steps.map((s) => s.event as EventObject).filter((e) => !e.type.startsWith('xstate.')), state: p.state.value }));
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

/** "CHIP_IDENTIFIED(source, owner=alice, 2 areas)": an event as a person reads it. */
export function describeEvent(e: EventObject): string {
  const skip = new Set(['type', 'now', 'data', 'grants', 'receipt', 'message', 'request', 'session', 'deadline']);
  const parts: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (skip.has(k) || v === undefined) continue;
    if (Array.isArray(v)) parts.push(`${v.length} ${k}`);
    else if (v && typeof v === 'object') continue;
    else parts.push(k === 'chip' || k === 'decision' || k === 'code' || k === 'op' || k === 'purpose' ? String(v) : `${k}=${String(v)}`);
  }
  return parts.length ? `${e.type}(${parts.join(', ')})` : e.type;
}

const stateText = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export function formatText(model: Model, paths: ModelPath[], cov: Coverage): string {
  const lines = paths.map(
    (p, i) => `${model.name} #${i + 1}${p.variant ? ` [${p.variant}]` : ''}: ${p.events.map(describeEvent).join(' → ') || '(start)'}  ⇒  ${stateText(p.state)}`,
  );
  lines.push(
    `${model.name}: ${paths.length} paths; planned coverage, replayed on the chart itself: ` +
      `states ${cov.states.reached}/${cov.states.total}; transitions ${cov.transitions.reached}/${cov.transitions.total}` +
      (cov.missingTransitions.length ? `; not reached: ${cov.missingTransitions.slice(0, 5).join('; ')}${cov.missingTransitions.length > 5 ? ' …' : ''}` : ''),
  );
  return lines.join('\n');
}

/** The union of all paths as one Mermaid state diagram (states as reached, edges labelled with events). */
export function formatMermaid(model: Model, paths: ModelPath[]): string {
  const ids = new Map<string, string>();
  const id = (v: unknown) => {
    const k = stateText(v);
    if (!ids.has(k)) ids.set(k, `s${ids.size}`);
    return ids.get(k)!;
  };
  const edges = new Set<string>();
  for (const p of paths) {
    const actor = createActor(model.machine, { input: inputOf(model, p.variant) as never }).start();
    let prev = actor.getSnapshot().value;
    edges.add(`  [*] --> ${id(prev)}`);
    for (const e of p.events) {
      actor.send(e as never);
      const next = actor.getSnapshot().value;
      edges.add(`  ${id(prev)} --> ${id(next)}: ${describeEvent(e).replace(/:/g, ' ')}`);
      prev = next;
    }
    actor.stop();
  }
  const names = [...ids.entries()].map(([text, sid]) => `  state "${text.replace(/"/g, "'")}" as ${sid}`);
  return ['stateDiagram-v2', ...names, ...edges].join('\n');
}
