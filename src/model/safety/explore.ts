/**
 * Exhaustive breadth-first exploration of the abstract model: every
 * reachable state is visited once (its canonical key is its bytes), every
 * state invariant is checked in it and every transition invariant on every
 * step out of it. Breadth-first, so the first counterexample found for an
 * invariant is a shortest one; it is kept as the list of action labels
 * from the initial state.
 */
import { checkState, checkTransition, type Failure } from './invariants.ts';
import { SafetyModel } from './model.ts';
import { SafetyState } from './state.ts';
import type { ExploreResult, InvariantName, SafetyOptions, Violation } from './types.ts';

/** Default bound on the states explored (a few hundred bytes each, with the key and the path links). */
export const STATES_MAX = 20_000_000;

export function explore(options: SafetyOptions = {}): ExploreResult {
  const started = performance.now();
  const model = new SafetyModel(options);
  const t = model.t;
  const statesMax = options.statesMax ?? STATES_MAX;

  const ids = new Map<string, number>();
  const keys: string[] = [];
  // Path links: the state each state was first reached from, and by which label (interned).
  let parent = new Int32Array(1 << 16);
  let via = new Int32Array(1 << 16);
  const labels: string[] = [];
  const labelIds = new Map<string, number>();
  const intern = (label: string) => {
    let id = labelIds.get(label);
    if (id === undefined) {
      id = labels.length;
      labels.push(label);
      labelIds.set(label, id);
    }
    return id;
  };
  const add = (key: string, from: number, label: number) => {
    const id = keys.length;
    if (id >= parent.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      parent = grow(parent);
      via = grow(via);
    }
    ids.set(key, id);
    keys.push(key);
    parent[id] = from;
    via[id] = label;
  };
  const pathTo = (id: number): string[] => {
    const path: string[] = [];
    for (let k = id; k > 0; k = parent[k]!) path.push(labels[via[k]!]!);
    return path.reverse();
  };

  const found = new Map<InvariantName, Violation>();
  const record = (failures: Failure[], id: number, last?: string) => {
    for (const f of failures) {
      if (found.has(f.invariant)) continue;
      const path = pathTo(id);
      if (last !== undefined) path.push(last);
      found.set(f.invariant, { invariant: f.invariant, detail: f.detail, path });
    }
  };

  add(model.initial().key(), -1, -1);
  let transitions = 0;
  let complete = true;
  const outcome = (s: SafetyState) => (m: number) => model.outcome(s, m);
  for (let id = 0; id < keys.length; id++) {
    const s = SafetyState.fromKey(t, keys[id]!);
    record(checkState(s, outcome(s)), id);
    for (const tr of model.successors(s)) {
      transitions++;
      const failures = checkTransition(s, tr);
      if (failures.length > 0) record(failures, id, tr.label());
      const key = tr.next.key();
      if (ids.has(key)) continue;
      if (keys.length >= statesMax) {
        complete = false;
        continue;
      }
      add(key, id, intern(tr.label()));
    }
  }
  return {
    states: keys.length,
    transitions,
    ms: Math.round(performance.now() - started),
    complete,
    violations: [...found.values()],
  };
}

/** A violation as the lines a test prints: the invariant, what was seen, and the steps from the initial state. */
export function formatViolation(v: Violation): string {
  return [`${v.invariant}: ${v.detail}`, ...v.path.map((step, k) => `  ${String(k + 1).padStart(3)}. ${step}`)].join('\n');
}
