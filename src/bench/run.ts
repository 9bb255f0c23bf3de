/**
 * `valmove bench`: the matrix of configurations (mode × K × concurrency),
 * the unit costs of the floor measured in the same run, the Markdown table
 * and the JSON file (issue 7).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEmbedded } from './embedded.ts';
import { measureUnits } from './floor.ts';
import { setProfileDir } from './measure.ts';
import { BenchProgress } from './progress.ts';
import { FLOOR_MODEL, growth, machine, markdown, writeJson, type ConfigResult, type Growth, type Mode } from './report.ts';

export const DEFAULT_CONCURRENCY = [1, 16, 64, 256];
export const DEFAULT_ITEMS = [1, 3, 10];
/**
 * `--quick`, unless --concurrency or --items say otherwise: five configurations, the fewest that still show every
 * figure in both modes and both growth lines (per item, K 1 → 3; per doubling of concurrency, 1 → 2) in embedded
 * mode, in under a minute on two busy cores (docs/performance.md). Processes mode runs K = 1 at concurrency 1 only:
 * each K there is a deployment of its own, seconds to start, and each configuration sets up its phones over sockets.
 */
export const QUICK_CONCURRENCY = [1, 2];
export const QUICK_ITEMS = [1, 3];
export const QUICK_PROCESSES = { items: [1], concurrency: [1] } as const;
/** Fewest migrations per configuration (a configuration runs max(this, concurrency), or --migrations). */
export const MIGRATIONS_MIN = 32;
export const QUICK_MIGRATIONS_MIN = 2;
/** scrypt cost of the bench's logins: below production (logins are not what is measured; their cost at N=2^15 is reported apart). */
export const BENCH_SCRYPT = { N: 2 ** 12, r: 8, p: 1 } as const;
export const BENCH_ITEMS_MAX = 20;
export const BENCH_CONCURRENCY_MAX = 1024;

/** The K and concurrency levels a run measures: those asked for, else the full matrix, or --quick's small one. */
export function benchMatrix(o: { quick: boolean; concurrency?: number[]; items?: number[] }): Pick<BenchOptions, 'concurrency' | 'items' | 'processes'> {
  return {
    concurrency: o.concurrency ?? (o.quick ? QUICK_CONCURRENCY : DEFAULT_CONCURRENCY),
    items: o.items ?? (o.quick ? QUICK_ITEMS : DEFAULT_ITEMS),
    processes: o.quick ? { items: o.items ?? [...QUICK_PROCESSES.items], concurrency: o.concurrency ?? [...QUICK_PROCESSES.concurrency] } : undefined,
  };
}

/** The configurations `o` runs: mode, K, concurrency, in the order they run. */
export function benchConfigurations(
  o: Pick<BenchOptions, 'modes' | 'concurrency' | 'items' | 'processes'>,
): Array<{ mode: Mode; items: number; concurrency: number }> {
  return o.modes.flatMap((mode) => {
    const m = levelsOf(o, mode);
    return m.items.flatMap((items) => m.concurrency.map((concurrency) => ({ mode, items, concurrency })));
  });
}

/** The K and concurrency levels of `mode`. */
function levelsOf(o: Pick<BenchOptions, 'concurrency' | 'items' | 'processes'>, mode: Mode): { items: number[]; concurrency: number[] } {
  return mode === 'processes' && o.processes ? o.processes : { items: o.items, concurrency: o.concurrency };
}

export interface BenchOptions {
  modes: Mode[];
  concurrency: number[];
  items: number[];
  /** Processes mode's own K and concurrency levels, if not `items` and `concurrency` (--quick: K 1 at concurrency 1). */
  processes?: { items: number[]; concurrency: number[] };
  /** Migrations per configuration, at least the concurrency; default max(MIGRATIONS_MIN, concurrency). */
  migrations?: number;
  quick: boolean;
  json: boolean;
  /** Folder for the JSON result; null: write none. */
  out: string | null;
  say: (line: string) => void;
  /** Folder for a CPU profile of each configuration's timed part (this process only). */
  profile?: string;
}

export interface BenchReport {
  startedAt: string;
  machine: Record<string, unknown>;
  options: {
    modes: Mode[];
    concurrency: number[];
    items: number[];
    processes?: { items: number[]; concurrency: number[] };
    migrations: string;
    quick: boolean;
    loginScrypt: typeof BENCH_SCRYPT;
  };
  floorModel: string;
  units: Awaited<ReturnType<typeof measureUnits>>;
  results: ConfigResult[];
  growth: Growth[];
  /** Modes asked for and not run, with why. */
  skipped: Array<{ mode: Mode; reason: string }>;
  markdown: string;
  jsonFile?: string;
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const startedAt = new Date();
  const floorMin = o.quick ? QUICK_MIGRATIONS_MIN : MIGRATIONS_MIN;
  // Never fewer migrations than users in flight: a configuration at concurrency c keeps c busy.
  const migrationsAt = (c: number) => Math.max(o.migrations ?? floorMin, c);
  const dataDir = mkdtempSync(join(tmpdir(), 'valmove-bench-'));
  const say = o.json ? () => {} : o.say;
  setProfileDir(o.profile);
  const results: ConfigResult[] = [];
  const skipped: BenchReport['skipped'] = [];
  try {
    const own = o.processes && o.modes.includes('processes') ? o.processes : undefined;
    const processes = own ? ` (processes mode: K ${own.items.join(', ')}, concurrency ${own.concurrency.join(', ')})` : '';
    say(`valmove bench: modes ${o.modes.join(', ')}; K ${o.items.join(', ')}; concurrency ${o.concurrency.join(', ')}${processes}; data under ${dataDir}`);
    const total = benchConfigurations(o).length;
    const progress = new BenchProgress(total, say);
    progress.note('measuring unit costs (crypto operations, durable commits)...');
    const units = await measureUnits({ batches: o.concurrency, quick: o.quick, loginScrypt: BENCH_SCRYPT });
    progress.note(`unit costs measured; ${total} configurations to run`);
    for (const mode of o.modes) {
      const levels = levelsOf(o, mode);
      for (const k of levels.items) {
        const common = { items: k, concurrencies: levels.concurrency, migrationsAt, scrypt: BENCH_SCRYPT, units, dataDir, say, progress };
        if (mode === 'embedded') results.push(...(await runEmbedded(common)));
        else {
          const { runProcesses } = await import('./processes.ts');
          results.push(...(await runProcesses(common)));
        }
      }
    }
    const grow = growth(results);
    const md = markdown(results, units, grow);
    const report: BenchReport = {
      startedAt: startedAt.toISOString(),
      machine: machine(),
      options: {
        modes: o.modes,
        concurrency: o.concurrency,
        items: o.items,
        ...(o.processes ? { processes: o.processes } : {}),
        migrations: o.migrations !== undefined ? `max(${o.migrations}, concurrency)` : `max(${floorMin}, concurrency)`,
        quick: o.quick,
        loginScrypt: BENCH_SCRYPT,
      },
      floorModel: FLOOR_MODEL,
      units,
      results,
      growth: grow,
      skipped,
      markdown: md,
    };
    if (o.out !== null) report.jsonFile = writeJson(o.out, report, startedAt);
    return report;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
