/**
 * Conformance: every step the real system takes is a step the abstract
 * model allows. The real embedded system is projected onto what the model
 * calls durable and observable (chip areas, the admin SAM's records and temp
 * keys, the migration SAMs' held items and fences); the checker follows the
 * successive projections and says of each change whether it is a stutter,
 * or what sequence of at most STEPS_MAX allowed abstract actions explains
 * it, or, when none does, which change the model forbids.
 *
 * The checker's model has no honest server and a rogue one: any request may
 * arrive at any time, so only the parties' own rules (protocol.md §2-§3) can
 * forbid a change, whatever the real server did. What the projection can
 * not see (which grants and receipts were issued, a cleared record from an
 * absent one) is hidden state: the checker keeps every abstract state that
 * matches what it saw.
 */
import type { EmbeddedSystem } from '../../actors/system.ts';
import { decodeValue } from '../../actors/value.ts';
import { SafetyModel } from './model.ts';
import { SafetyState, type Topology } from './state.ts';
import { AREA_STATES, DECISIONS, KEY_STATES, type AreaState, type Decision, type KeyState } from './types.ts';

/** The abstract actions one observed change may stand for (a change seen late, or between two torn reads, is several). */
export const STEPS_MAX = 24;

export type ObservedHeld = 'none' | 'open' | 'held' | 'receipted';

/** What the model and the real system can both show. Indices: chips, areas (= items), migrations, tokens of the model. */
export interface Observation {
  /** [chip][area]: lifecycle state, holding migration (-1: none), value token (-1: no data). */
  areas: Array<Array<{ st: AreaState; holder: number; token: number }>>;
  /** [migration]: the admin SAM's record, the destination it bound (-1: none), its temp keys, the providers that fenced it (mask). */
  migrations: Array<{ dec: Decision; dest: number; keys: KeyState; fenced: number }>;
  /** [migration][item]: what that item's migration SAM holds of it (a cleared record and no record look the same). */
  held: Array<Array<{ st: ObservedHeld; token: number }>>;
}

/** The observable part of an abstract state. */
export function observe(s: SafetyState): Observation {
  const t = s.t;
  return {
    areas: Array.from({ length: t.chips }, (_, c) => Array.from({ length: t.K }, (_, i) => s.area(c, i))),
    migrations: Array.from({ length: t.M }, (_, m) => {
      let fenced = 0;
      for (let p = 0; p < t.K; p++) if (s.fenced(m, p)) fenced |= 1 << p;
      return { dec: s.dec(m), dest: s.dest(m), keys: s.keys(m), fenced };
    }),
    held: Array.from({ length: t.M }, (_, m) =>
      Array.from({ length: t.K }, (_, i) => {
        const h = s.held(m, i);
        return h === 'cleared' || h === 'none' ? { st: 'none' as const, token: -1 } : { st: h, token: s.heldToken(m, i) };
      }),
    ),
  };
}

const HELD_CODES: ObservedHeld[] = ['none', 'open', 'held', 'receipted'];

/** A canonical string of an observation (equal observations, equal keys). */
export function observationKey(o: Observation): string {
  const code = (n: number) => String.fromCharCode(48 + n + 1);
  let k = '';
  for (const chip of o.areas) for (const a of chip) k += code(AREA_STATES.indexOf(a.st)) + code(a.holder) + code(a.token);
  k += '|';
  for (const m of o.migrations) k += code(DECISIONS.indexOf(m.dec)) + code(m.dest) + code(KEY_STATES.indexOf(m.keys)) + code(m.fenced);
  k += '|';
  for (const items of o.held) for (const h of items) k += code(HELD_CODES.indexOf(h.st)) + code(h.token);
  return k;
}

/** Names to print an observation with: the real serials, area names, migration ids (the model's own by default). */
export interface Names {
  chip: (c: number) => string;
  area: (i: number) => string;
  mig: (m: number) => string;
  token: (t: number) => string;
}

export function modelNames(t: Topology): Names {
  return { chip: (c) => t.chipName(c), area: (i) => `area ${i}`, mig: (m) => t.migName(m), token: (x) => t.tokenName(x) };
}

/** What changed from `a` to `b`, one line per field. */
export function describeChange(a: Observation, b: Observation, n: Names): string[] {
  const out: string[] = [];
  const area = (x: { st: AreaState; holder: number; token: number }) =>
    `${x.st}${x.holder >= 0 ? ` held by ${n.mig(x.holder)}` : ''}${x.token >= 0 ? ` with ${n.token(x.token)}` : ''}`;
  b.areas.forEach((chip, c) => {
    chip.forEach((x, i) => {
      const y = a.areas[c]![i]!;
      if (area(x) !== area(y)) out.push(`${n.chip(c)} ${n.area(i)}: ${area(y)} -> ${area(x)}`);
    });
  });
  b.migrations.forEach((x, m) => {
    const y = a.migrations[m]!;
    const dest = (d: number) => (d >= 0 ? n.chip(d) : 'none');
    if (x.dec !== y.dec) out.push(`record of ${n.mig(m)}: ${y.dec} -> ${x.dec}`);
    if (x.dest !== y.dest) out.push(`destination of ${n.mig(m)}: ${dest(y.dest)} -> ${dest(x.dest)}`);
    if (x.keys !== y.keys) out.push(`temp keys of ${n.mig(m)}: ${y.keys} -> ${x.keys}`);
    if (x.fenced !== y.fenced) out.push(`migration SAMs that fenced ${n.mig(m)} (mask): ${y.fenced} -> ${x.fenced}`);
  });
  b.held.forEach((items, m) => {
    items.forEach((x, i) => {
      const y = a.held[m]![i]!;
      const h = (z: { st: ObservedHeld; token: number }) => `${z.st}${z.token >= 0 ? ` ${n.token(z.token)}` : ''}`;
      if (h(x) !== h(y)) out.push(`migration SAM of ${n.area(i)} holds for ${n.mig(m)}: ${h(y)} -> ${h(x)}`);
    });
  });
  return out;
}

// ---- the checker ---------------------------------------------------------------------------------------

/** The checker's abstract graph: every state the parties' rules allow, built once per shape (it is small: no server state). */
class AbstractGraph {
  readonly keys: string[] = [];
  readonly obs: string[] = [];
  readonly succ: number[][] = [];
  readonly labels: string[][] = [];
  private readonly ids = new Map<string, number>();

  constructor(readonly model: SafetyModel) {
    this.add(model.initial());
    for (let id = 0; id < this.keys.length; id++) {
      const s = SafetyState.fromKey(model.t, this.keys[id]!);
      const succ: number[] = [];
      const labels: string[] = [];
      for (const tr of model.successors(s)) {
        succ.push(this.ids.get(tr.next.key()) ?? this.add(tr.next));
        labels.push(tr.label());
      }
      this.succ.push(succ);
      this.labels.push(labels);
    }
  }

  private add(s: SafetyState): number {
    const id = this.keys.length;
    const key = s.key();
    this.ids.set(key, id);
    this.keys.push(key);
    this.obs.push(observationKey(observe(s)));
    return id;
  }

  private static cache = new Map<string, AbstractGraph>();

  static of(items: number, migrations: number): AbstractGraph {
    const k = `${items}/${migrations}`;
    let g = AbstractGraph.cache.get(k);
    if (!g) {
      g = new AbstractGraph(new SafetyModel({ items, migrations, honestServer: false, rogue: true }));
      AbstractGraph.cache.set(k, g);
    }
    return g;
  }
}

export type ConformanceStep =
  | { kind: 'stutter' }
  /** `actions`: one shortest sequence of abstract actions that explains the change. */
  | { kind: 'steps'; actions: string[] }
  | { kind: 'forbidden'; message: string; change: string[] };

export class ConformanceChecker {
  private readonly graph: AbstractGraph;
  /** The abstract states that match everything seen so far. */
  private frontier: number[];
  private last: Observation;
  private lastKey: string;
  /** The most abstract actions one observed change needed so far. */
  stepsMax = 0;

  constructor(
    opts: { items: number; migrations: number },
    first: Observation,
    private readonly names: Names,
  ) {
    this.graph = AbstractGraph.of(opts.items, opts.migrations);
    this.last = first;
    this.lastKey = observationKey(first);
    if (this.graph.obs[0] !== this.lastKey) {
      const initial = observe(SafetyState.fromKey(this.graph.model.t, this.graph.keys[0]!));
      throw new Error(`conformance: the real system does not start where the model does: ${describeChange(initial, first, names).join('; ')}`);
    }
    this.frontier = [0];
  }

  /** Follows one more projection of the real system; a forbidden change leaves the checker where it was. */
  observe(o: Observation): ConformanceStep {
    const key = observationKey(o);
    if (key === this.lastKey) return { kind: 'stutter' };
    const g = this.graph;
    // Breadth-first from every state that matches what was seen, to every state that matches what is seen now.
    const parent = new Map<number, { from: number; label: string } | null>();
    let layer = this.frontier;
    for (const id of layer) parent.set(id, null);
    const found: number[] = [];
    let foundAt = -1;
    for (let depth = 1; depth <= STEPS_MAX && layer.length > 0; depth++) {
      // Keep looking two steps past the first match: hidden steps (a grant issued) lead to more matching states.
      if (foundAt >= 0 && depth > foundAt + 2) break;
      const next: number[] = [];
      for (const id of layer) {
        const succ = g.succ[id]!;
        for (let k = 0; k < succ.length; k++) {
          const to = succ[k]!;
          if (parent.has(to)) continue;
          parent.set(to, { from: id, label: g.labels[id]![k]! });
          next.push(to);
          if (g.obs[to] === key) {
            found.push(to);
            if (foundAt < 0) foundAt = depth;
          }
        }
      }
      layer = next;
    }
    if (found.length === 0) {
      const change = describeChange(this.last, o, this.names);
      return {
        kind: 'forbidden',
        change,
        message: `no sequence of at most ${STEPS_MAX} steps the protocol allows leads from what was seen to what is seen now: ${change.join('; ')}`,
      };
    }
    const actions: string[] = [];
    for (let at = parent.get(found[0]!); at; at = parent.get(at.from)) actions.unshift(at.label);
    this.stepsMax = Math.max(this.stepsMax, actions.length);
    this.frontier = found;
    this.last = o;
    this.lastKey = key;
    return { kind: 'steps', actions };
  }
}

// ---- the projection of the real system ----------------------------------------------------------------

/** How the real system's names map onto the model's indices. Migrations are numbered as they appear. */
export interface ProjectionMap {
  /** Chip serials, in the model's chip order (SRC, DST, ...). */
  chips: string[];
  /** Area names, in item order; item i belongs to provider `providers[i]`. */
  areas: string[];
  providers: string[];
  /** Value refs, in token order. */
  tokens: string[];
  migrations: string[];
}

export class ProjectionError extends Error {}

/** Reads the real system's stores (chips, admin SAM, migration SAMs) and projects them onto an observation. */
export function projectSystem(system: EmbeddedSystem, map: ProjectionMap, migrationsMax: number): Observation {
  const migIndex = (mig: string) => {
    let m = map.migrations.indexOf(mig);
    if (m < 0) {
      if (map.migrations.length >= migrationsMax) throw new ProjectionError(`migration ${mig} is one more than the model's ${migrationsMax}`);
      m = map.migrations.push(mig) - 1;
    }
    return m;
  };
  const tokenOf = (data: Uint8Array | null) => {
    if (!data) return -1;
    const ref = decodeValue(data).ref;
    const t = map.tokens.indexOf(ref);
    if (t < 0) throw new ProjectionError(`a value item the model does not know (${ref}) appeared`);
    return t;
  };
  // Migrations first, in the order the admin SAM has them, so their numbering does not depend on which store is read first.
  const admin = system.adminSam.records;
  for (const { key } of admin.decisions.getRange()) migIndex(String(key));
  const areas = map.chips.map((serial) => {
    const chip = system.chips.get(serial);
    return map.areas.map((name) => {
      const rec = chip?.memory.get(name);
      if (!rec) return { st: 'absent' as const, holder: -1, token: -1 };
      return { st: rec.state, holder: rec.holder === null ? -1 : migIndex(rec.holder), token: tokenOf(rec.data) };
    });
  });
  const held = map.migrations.map(() => map.areas.map(() => ({ st: 'none' as ObservedHeld, token: -1 })));
  const fencedBy = new Map<string, number>();
  map.providers.forEach((p, i) => {
    const msam = system.providers.get(p)?.migrationSam;
    if (!msam) throw new ProjectionError(`no provider ${p}`);
    for (const h of msam.held()) {
      const m = migIndex(h.mig);
      const item = map.areas.indexOf(h.area);
      if (item !== i) throw new ProjectionError(`migration SAM ${p} holds an item of area ${h.area}`);
      held[m] ??= map.areas.map(() => ({ st: 'none' as ObservedHeld, token: -1 }));
      held[m]![i] = { st: h.data === null ? 'open' : h.receipt ? 'receipted' : 'held', token: tokenOf(h.data) };
    }
    for (const { key } of msam.records.fenced.getRange()) {
      const mig = String(key);
      migIndex(mig);
      fencedBy.set(mig, (fencedBy.get(mig) ?? 0) | (1 << i));
    }
  });
  const migrations = Array.from({ length: migrationsMax }, (_, m) => {
    const mig = map.migrations[m];
    if (mig === undefined) return { dec: 'none' as Decision, dest: -1, keys: 'none' as KeyState, fenced: 0 };
    const rec = admin.decisions.get(mig);
    let keys: KeyState = 'none';
    for (const { value } of admin.tempKeys.getRange({ start: `${mig}:`, end: `${mig}:\uffff` }))
      keys = value.key !== null ? 'live' : keys === 'live' ? 'live' : 'ended';
    const dest = rec?.destination ? map.chips.indexOf(rec.destination) : -1;
    if (rec?.destination && dest < 0) throw new ProjectionError(`migration ${mig} is bound to chip ${rec.destination}, which the model does not have`);
    return { dec: (rec?.state ?? 'none') as Decision, dest, keys, fenced: fencedBy.get(mig) ?? 0 };
  });
  while (held.length < migrationsMax) held.push(map.areas.map(() => ({ st: 'none' as ObservedHeld, token: -1 })));
  return { areas, migrations, held };
}

/** Names for printing a projection of the real system. */
export function realNames(map: ProjectionMap): Names {
  return {
    chip: (c) => map.chips[c] ?? `chip ${c}`,
    area: (i) => `area ${map.areas[i] ?? i}`,
    mig: (m) => map.migrations[m] ?? `migration ${m}`,
    token: (t) => `item ${map.tokens[t]?.slice(0, 8) ?? t}`,
  };
}
