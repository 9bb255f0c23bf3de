/**
 * Shrinking a failing seed to a story (simulation.md, "On a violation"; issue 20). The same seed is run again
 * with a smaller world — fewer migrations, fewer items, fewer fault kinds, no rogue attacks, no payments — and
 * every change after which it still violates the same invariant is kept; then the faults that struck are
 * switched off, halves first, while it still fails. What is left is a run a reader can follow: one migration
 * when one suffices, and only the faults the bug needs. Each trial is a whole seed, so the shrinker has a run
 * budget; the shape it ends on replays exactly with the command `replayCommand` prints.
 */
import type { BreakProtocol } from '../testing/broken.ts';
import type { RogueAttack } from './rogue.ts';
import { runSeed } from './simulator.ts';
import type { FaultKind, SeedResult, SimOptions } from './types.ts';

/** Seeds a shrink may run in all (each a whole seed: its world, both phases, the checks). */
export const SHRINK_RUNS_MAX = 64;
/** Times the world's dimensions are tried again after one of them shrank (a smaller world may let another shrink). */
const SHRINK_PASSES_MAX = 3;

/** A run's shape: what, besides the seed, decides what happens in it. */
export interface RunShape {
  seed: string;
  migrations: number;
  items: number;
  faults: readonly FaultKind[];
  rogue: readonly RogueAttack[];
  pay: boolean;
  breakProtocol?: BreakProtocol;
  /** Fault numbers switched off (sorted). */
  mask: number[];
}

export interface Shrunk {
  /** The smallest failing run found, its trace kept. */
  result: SeedResult;
  shape: RunShape;
  /** Seeds run while shrinking. */
  runs: number;
}

/** The shape of the run `o` asks for. */
export function shapeOf(o: SimOptions): RunShape {
  return {
    seed: o.seed,
    migrations: o.migrations,
    items: o.items,
    faults: o.faults,
    rogue: o.rogue ?? [],
    pay: o.pay === true,
    breakProtocol: o.breakProtocol,
    mask: [...(o.mask ?? [])].sort((a, b) => a - b),
  };
}

/** "0-4,7,9-10" for [0,1,2,3,4,7,9,10]. */
export function formatMask(ns: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ns.length; ) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++;
    out.push(j > i ? `${ns[i]}-${ns[j]}` : `${ns[i]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** The one command line that replays exactly this run (a single seed: its verdict and trace hash). */
export function replayCommand(s: RunShape): string {
  return [
    `valmove sim --seed ${s.seed} --migrations ${s.migrations} --items ${s.items} --faults ${s.faults.length > 0 ? s.faults.join(',') : 'none'}`,
    s.breakProtocol ? ` --break ${s.breakProtocol}` : '',
    s.rogue.length > 0 ? ` --rogue ${s.rogue.join(',')}` : '',
    s.pay ? ' --pay' : '',
    s.mask.length > 0 ? ` --mask ${formatMask(s.mask)}` : '',
  ].join('');
}

/** Shrinks `failing` (the result of `o`) to the smallest run of the same seed that still violates the same invariant. */
export async function shrinkRun(o: SimOptions, failing: SeedResult, budgetRuns = SHRINK_RUNS_MAX): Promise<Shrunk> {
  const trial = new Trials(o, failing, budgetRuns);
  await trial.world();
  await trial.faults();
  return { result: trial.best, shape: shapeOf(trial.o), runs: trial.runs };
}

/** The trials of one shrink: the best failing run so far, and the budget left. */
class Trials {
  o: SimOptions;
  best: SeedResult;
  runs = 0;

  constructor(
    o: SimOptions,
    private readonly failing: SeedResult,
    private readonly budgetRuns: number,
  ) {
    this.o = { ...o, mask: undefined };
    this.best = failing;
  }

  /** Runs `o`; keeps it when it fails the same way. False once the budget is spent. */
  private async fails(o: SimOptions): Promise<boolean> {
    if (this.runs >= this.budgetRuns) return false;
    this.runs++;
    const r = await runSeed({ ...o, keepTrace: true });
    if (r.ok || r.violation?.invariant !== this.failing.violation?.invariant) return false;
    this.o = o;
    this.best = r;
    return true;
  }

  /** Tries `candidates` in order (smallest first); keeps the first that still fails. */
  private async first(candidates: SimOptions[]): Promise<boolean> {
    for (const c of candidates) if (await this.fails(c)) return true;
    return false;
  }

  /** The world's dimensions: the smallest world at once, then one dimension at a time, until none shrinks. */
  async world(): Promise<void> {
    const o = this.o;
    const least: SimOptions = { ...o, migrations: 1, items: 1, faults: [], rogue: [], pay: false };
    if (!sameShape(least, o) && (await this.fails(least))) return;
    for (let pass = 0; pass < SHRINK_PASSES_MAX; pass++) {
      let shrank = false;
      // Each dimension's candidates are drawn from the run kept so far (a shrink of the one before included).
      for (const candidates of DIMENSIONS) if (await this.first(candidates(this.o))) shrank = true;
      if (!shrank) return;
    }
  }

  /**
   * The faults that struck, switched off while the seed still fails (simulation.md: drop faults while it still
   * fails): halves, then quarters, ... Fault numbers count in the order faults strike, so they follow the world's
   * shape: this comes after the world stopped shrinking.
   */
  async faults(): Promise<void> {
    let mask = new Set<number>();
    let chunk = Math.max(1, Math.ceil(this.best.struck.length / 2));
    while (this.runs < this.budgetRuns && this.best.struck.length > 0) {
      let improved = false;
      const struck = this.best.struck;
      for (let start = 0; start < struck.length && this.runs < this.budgetRuns; start += chunk) {
        const trial = new Set([...mask, ...struck.slice(start, start + chunk)]);
        if (await this.fails({ ...this.o, mask: trial })) {
          mask = trial;
          improved = true;
          break;
        }
      }
      if (!improved) {
        if (chunk === 1) return;
        chunk = Math.max(1, Math.floor(chunk / 2));
      }
    }
  }
}

/** The world's dimensions, in the order they are shrunk: each gives the smaller runs to try, the smallest first. */
const DIMENSIONS: ReadonlyArray<(o: SimOptions) => SimOptions[]> = [(o) => fewer(o, 'migrations'), (o) => fewer(o, 'items'), fewerKinds, fewerAttacks, noPay];

function sameShape(a: SimOptions, b: SimOptions): boolean {
  return JSON.stringify(shapeOf(a)) === JSON.stringify(shapeOf(b));
}

/** `o` with 1, 2, ... up to one less of `key` (the smallest first). */
function fewer(o: SimOptions, key: 'migrations' | 'items'): SimOptions[] {
  return Array.from({ length: o[key] - 1 }, (_, i) => ({ ...o, [key]: i + 1 }));
}

/** `o` with no fault kinds, then with each one left out. */
function fewerKinds(o: SimOptions): SimOptions[] {
  if (o.faults.length === 0) return [];
  return [{ ...o, faults: [] }, ...(o.faults.length > 1 ? o.faults.map((k) => ({ ...o, faults: o.faults.filter((f) => f !== k) })) : [])];
}

/** `o` with no rogue attacks, then with each one left out. */
function fewerAttacks(o: SimOptions): SimOptions[] {
  const attacks = o.rogue ?? [];
  if (attacks.length === 0) return [];
  return [{ ...o, rogue: [] }, ...(attacks.length > 1 ? attacks.map((a) => ({ ...o, rogue: attacks.filter((x) => x !== a) })) : [])];
}

function noPay(o: SimOptions): SimOptions[] {
  return o.pay ? [{ ...o, pay: false }] : [];
}
