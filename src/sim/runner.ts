/**
 * Many seeds: runs them in worker processes (each a `valmove sim --worker`
 * child printing one JSON line per seed), adds up the figures, and on the
 * first violation shrinks that seed and hands back its minimal trace.
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BreakProtocol } from '../testing/broken.ts';
import type { RogueAttack, RogueStats } from './rogue.ts';
import { replayCommand, shrinkRun, type Shrunk } from './shrink.ts';
import { runSeed, type FaultKind, type FaultMix, type SeedResult } from './simulator.ts';

export interface RunOptions {
  seeds: number;
  from: number;
  migrations: number;
  items: number;
  faults: readonly FaultKind[];
  jobs: number;
  breakProtocol?: BreakProtocol;
  /** The rogue server's attacks (none: an honest server). */
  rogue?: readonly RogueAttack[];
  /** Users try to pay on both phones throughout. */
  pay?: boolean;
  /** Parent folder for the seeds' stores; a fresh one under /dev/shm (or the OS temp folder) by default. */
  dataDir?: string;
  /** Shrink the first failing seed (default true). */
  shrink?: boolean;
  /** Where the shrunk run's trace goes (default: a fresh file under the OS temp folder, its path in the report). */
  traceOut?: string;
  /** Called after each seed (progress). */
  onSeed?: (r: SeedSummary, done: number) => void;
}

/** What a worker reports per seed (the trace itself stays in the worker; its hash comes back). */
export type SeedSummary = Omit<SeedResult, 'trace'>;

export interface RunReport {
  seeds: number;
  migrations: number;
  violations: number;
  delivered: number;
  faults: Record<string, number>;
  crashes: number;
  partitions: number;
  outcomes: Record<string, number>;
  /** The rogue server's attacks over every seed: tried, refused by their check, unanswered. */
  rogue: Record<string, RogueStats>;
  payments: { tried: number; accepted: number; failed: number };
  /** Mean of each fault rate over the seeds (swarm testing draws them per seed). */
  meanMix: Record<keyof FaultMix, number>;
  wallMs: number;
  firstViolation?: SeedSummary;
  /** The first failing seed, shrunk: its run, the command that replays it, and the file its trace went to. */
  minimal?: Shrunk & { command: string; traceFile: string };
}

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/valmove.js');

/** Where simulation stores go: memory-backed /dev/shm when the machine has it (LMDB syncs there cost nothing). */
export function defaultSimDir(): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return join(base, `valmove-sim-${process.pid}`);
}

/** The worker's loop: seeds from, from + jobs, from + 2 jobs, ... (the job's share), one JSON line each. */
export async function workerLoop(o: RunOptions & { job: number }, write: (line: string) => void): Promise<void> {
  const dir = o.dataDir ?? defaultSimDir();
  mkdirSync(dir, { recursive: true });
  try {
    for (let s = o.from + o.job; s < o.from + o.seeds; s += o.jobs) {
      const r = await runSeed({
        seed: String(s),
        migrations: o.migrations,
        items: o.items,
        faults: o.faults,
        dataDir: dir,
        breakProtocol: o.breakProtocol,
        rogue: o.rogue,
        pay: o.pay,
      });
      const { trace: _trace, ...summary } = r;
      write(JSON.stringify(summary));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runSeeds(o: RunOptions): Promise<RunReport> {
  const started = performance.now();
  const report = emptyReport();
  const jobs = Math.max(1, Math.min(o.jobs, o.seeds));
  const base = o.dataDir ?? defaultSimDir();
  await Promise.all(
    Array.from({ length: jobs }, (_, job) =>
      runWorker(job, workerArgs(o, job, jobs, base), (r) => {
        addSeed(report, o, r);
        o.onSeed?.(r, report.seeds);
      }),
    ),
  );
  for (const k of Object.keys(report.meanMix) as Array<keyof FaultMix>) report.meanMix[k] = report.seeds ? report.meanMix[k] / report.seeds : 0;
  if (report.firstViolation && o.shrink !== false) report.minimal = await shrinkFirst(o, report.firstViolation, base);
  rmSync(base, { recursive: true, force: true });
  report.wallMs = Math.round(performance.now() - started);
  return report;
}

function emptyReport(): RunReport {
  return {
    seeds: 0,
    migrations: 0,
    violations: 0,
    delivered: 0,
    faults: {},
    crashes: 0,
    partitions: 0,
    outcomes: {},
    rogue: {},
    payments: { tried: 0, accepted: 0, failed: 0 },
    meanMix: { drop: 0, dup: 0, reorder: 0, delay: 0, delayMaxMs: 0, crash: 0, partition: 0 },
    wallMs: 0,
  };
}

/** Adds one seed's figures to the report (and keeps the lowest failing seed). */
function addSeed(report: RunReport, o: RunOptions, r: SeedSummary): void {
  report.seeds++;
  report.migrations += o.migrations;
  report.delivered += r.stats.delivered;
  report.crashes += r.stats.crashes;
  report.partitions += r.stats.partitions;
  for (const [k, v] of Object.entries(r.stats.faults)) report.faults[k] = (report.faults[k] ?? 0) + v;
  for (const [k, v] of Object.entries(r.stats.outcomes)) report.outcomes[k] = (report.outcomes[k] ?? 0) + v;
  if (r.stats.payments) for (const k of ['tried', 'accepted', 'failed'] as const) report.payments[k] += r.stats.payments[k];
  for (const [k, v] of Object.entries(r.stats.rogue ?? {})) {
    const t = (report.rogue[k] ??= { tried: 0, refused: 0, unanswered: 0 });
    t.tried += v.tried;
    t.refused += v.refused;
    t.unanswered += v.unanswered;
  }
  for (const k of Object.keys(report.meanMix) as Array<keyof FaultMix>) report.meanMix[k] += r.mix[k];
  if (!r.ok) {
    report.violations++;
    if (!report.firstViolation || Number(r.seed) < Number(report.firstViolation.seed)) report.firstViolation = r;
  }
}

/** A worker's command line: its share of the seeds, and its own stores folder under `base`. */
function workerArgs(o: RunOptions, job: number, jobs: number, base: string): string[] {
  return [
    'sim',
    '--worker',
    String(job),
    '--seeds',
    String(o.seeds),
    '--from',
    String(o.from),
    '--jobs',
    String(jobs),
    '--migrations',
    String(o.migrations),
    '--items',
    String(o.items),
    '--faults',
    o.faults.length > 0 ? o.faults.join(',') : 'none',
    '--data',
    join(base, `job-${job}`),
    ...(o.breakProtocol ? ['--break', o.breakProtocol] : []),
    ...(o.rogue && o.rogue.length > 0 ? ['--rogue', o.rogue.join(',')] : []),
    ...(o.pay ? ['--pay'] : []),
  ];
}

/** Runs one worker process to its end, handing each seed's summary line to `add`. */
function runWorker(job: number, args: string[], add: (r: SeedSummary) => void): Promise<void> {
  const child = fork(BIN, args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (l) => {
    if (l.startsWith('{')) add(JSON.parse(l) as SeedSummary);
  });
  return new Promise<void>((res, rej) => {
    child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`simulation worker ${job} exited with code ${code}`))));
    child.on('error', rej);
  });
}

/** Shrinks the first failing seed in this process and writes its minimal trace to a file. */
async function shrinkFirst(o: RunOptions, first: SeedSummary, base: string): Promise<NonNullable<RunReport['minimal']>> {
  const dir = join(base, 'shrink');
  mkdirSync(dir, { recursive: true });
  try {
    const opts = {
      seed: first.seed,
      migrations: o.migrations,
      items: o.items,
      faults: o.faults,
      dataDir: dir,
      breakProtocol: o.breakProtocol,
      rogue: o.rogue,
      pay: o.pay,
    };
    const failing = await runSeed({ ...opts, keepTrace: true });
    const m = await shrinkRun(opts, failing);
    const traceFile = writeTrace(o.traceOut, m.shape.seed, m.result.trace);
    return { ...m, command: replayCommand(m.shape), traceFile };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a seed's trace to `path`, or to a fresh file of its own under the OS temp folder (never a shared, fixed name); returns where. */
export function writeTrace(path: string | undefined, seed: string, trace: readonly string[]): string {
  const file = path ?? join(mkdtempSync(join(tmpdir(), 'valmove-sim-')), `seed-${seed.replace(/[^A-Za-z0-9_-]/g, '_')}.trace`);
  mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(file, `${trace.join('\n')}\n`);
  return file;
}
