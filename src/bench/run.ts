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
import { FLOOR_MODEL, growth, machine, markdown, writeJson, type ConfigResult, type Growth, type Mode } from './report.ts';

export const DEFAULT_CONCURRENCY = [1, 16, 64, 256];
export const DEFAULT_ITEMS = [1, 3, 10];
/** Fewest migrations per configuration (a configuration runs max(this, concurrency), or --migrations). */
export const MIGRATIONS_MIN = 32;
export const QUICK_MIGRATIONS_MIN = 2;
/** scrypt cost of the bench's logins: below production (logins are not what is measured; their cost at N=2^15 is reported apart). */
export const BENCH_SCRYPT = { N: 2 ** 12, r: 8, p: 1 } as const;
export const BENCH_ITEMS_MAX = 20;
export const BENCH_CONCURRENCY_MAX = 1024;

export interface BenchOptions {
  modes: Mode[];
  concurrency: number[];
  items: number[];
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
  options: { modes: Mode[]; concurrency: number[]; items: number[]; migrations: string; quick: boolean; loginScrypt: typeof BENCH_SCRYPT };
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
    say(`valmove bench: modes ${o.modes.join(', ')}; K ${o.items.join(', ')}; concurrency ${o.concurrency.join(', ')}; data under ${dataDir}`);
    say('measuring unit costs (crypto operations, durable commits)...');
    const units = await measureUnits({ batches: o.concurrency, quick: o.quick, loginScrypt: BENCH_SCRYPT });
    for (const mode of o.modes) {
      for (const k of o.items) {
        const common = { items: k, concurrencies: o.concurrency, migrationsAt, scrypt: BENCH_SCRYPT, units, dataDir, say };
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
