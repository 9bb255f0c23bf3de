/** `valmove sim`: deterministic simulation with seeded faults (src/sim/, docs: simulation.md). */
import { availableParallelism } from 'node:os';
import { mkdirSync, rmSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { BREAKS, type BreakProtocol } from '../testing/broken.ts';
import { defaultSimDir, runSeeds, workerLoop, writeTrace, type RunReport } from '../sim/runner.ts';
import { ROGUE_ATTACKS, type RogueAttack } from '../sim/rogue.ts';
import { replayCommand, type RunShape } from '../sim/shrink.ts';
import { FAULT_KINDS, runSeed, type FaultKind } from '../sim/simulator.ts';

/** Concurrent migrations per seed, at most (each is a user with two phones and two chips). */
export const SIM_MIGRATIONS_MAX = 32;
/** Items per migration, at most. */
export const SIM_ITEMS_MAX = 8;

function count(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}; got "${value}"`);
    return n;
  };
}

export function parseFaultKinds(spec: string): FaultKind[] {
  if (spec === 'none' || spec === '') return [];
  if (spec === 'all') return [...FAULT_KINDS];
  const kinds = spec.split(',').map((s) => s.trim());
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new InvalidArgumentError(`unknown fault kind "${k}"; use ${FAULT_KINDS.join(',')}, all or none`);
  }
  return kinds as FaultKind[];
}

export function parseRogue(spec: string | undefined): RogueAttack[] {
  if (spec === undefined || spec === 'none' || spec === '') return [];
  if (spec === 'all') return [...ROGUE_ATTACKS];
  const attacks = spec.split(',').map((s) => s.trim());
  for (const a of attacks) {
    if (!(ROGUE_ATTACKS as readonly string[]).includes(a))
      throw new InvalidArgumentError(`unknown rogue attack "${a}"; use ${ROGUE_ATTACKS.join(',')}, all or none`);
  }
  return attacks as RogueAttack[];
}

export function parseMask(spec: string): Set<number> {
  const out = new Set<number>();
  for (const part of spec.split(',').filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError(`--mask: "${part}" is not a fault number or a range like 3-7`);
    const [a, b] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (b < a || b - a > 10_000_000) throw new InvalidArgumentError(`--mask: "${part}" is not a range from low to high`);
    for (let n = a; n <= b; n++) out.add(n);
  }
  return out;
}

function fmtCounts(c: Record<string, number>): string {
  const e = Object.entries(c);
  return e.length === 0 ? 'none' : e.map(([k, v]) => `${k} ${v}`).join(', ');
}

export function formatReport(r: RunReport, o: { faults: readonly string[]; items: number }): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [
    `seeds ${r.seeds}, ${r.migrations} migrations (${r.migrations / Math.max(1, r.seeds)} per seed, 1-${o.items} items each), ` +
      `faults ${o.faults.join(',') || 'none'}`,
    `messages delivered ${r.delivered}; faults struck: ${fmtCounts(r.faults)}; crashes ${r.crashes}; partitions ${r.partitions}`,
    `mean fault rates per seed: drop ${pct(r.meanMix.drop)}, dup ${pct(r.meanMix.dup)}, reorder ${pct(r.meanMix.reorder)}, delay ${pct(r.meanMix.delay)}, ` +
      `crash ${pct(r.meanMix.crash)} per turn point, partitions ${r.meanMix.partition.toFixed(2)}/s`,
    `outcomes: ${fmtCounts(r.outcomes)}`,
    ...(Object.keys(r.rogue ?? {}).length > 0
      ? [
          `rogue server: ${Object.entries(r.rogue)
            .filter(([, v]) => v.tried > 0)
            .map(([k, v]) => `${k} refused ${v.refused}/${v.tried}${v.unanswered ? ` (${v.unanswered} unanswered)` : ''}`)
            .join('; ')}`,
        ]
      : []),
    ...(r.payments && r.payments.tried > 0
      ? [`payments: tried ${r.payments.tried}, accepted ${r.payments.accepted}, refused or unanswered ${r.payments.failed}`]
      : []),
    `violations ${r.violations}; wall time ${(r.wallMs / 1000).toFixed(1)} s (${(r.wallMs / Math.max(1, r.seeds)).toFixed(0)} ms per seed)`,
  ];
  return lines;
}

/** What `valmove sim` is given on its command line. */
interface SimCommandOptions {
  seeds: number;
  from: number;
  seed?: string;
  migrations: number;
  items: number;
  faults: string;
  jobs: number;
  trace: boolean;
  traceOut?: string;
  shrink: boolean;
  mask?: string;
  break?: string;
  rogue: string;
  pay: boolean;
  json: boolean;
  data?: string;
  worker?: string;
}

/** The parsed options every mode of the command shares. */
interface SimRunOptions {
  faults: FaultKind[];
  breakProtocol: BreakProtocol | undefined;
  rogue: RogueAttack[];
  /** The run's shape, but for its seed: for the command lines the report prints. */
  shape: Omit<RunShape, 'seed'>;
}

export function addSimCommand(program: Command, out: (line: string) => void): void {
  program
    .command('sim')
    .description(
      'deterministic simulation: concurrent migrations under seeded message loss, duplication, reordering, delay, crashes and partitions, ' +
        'invariants checked after every delivered message',
    )
    .option('--seeds <n>', 'how many seeds to run', count('--seeds', 1, 10_000_000), 100)
    .option('--from <n>', 'first seed of the run (seeds are from, from+1, ...)', count('--from', 0, Number.MAX_SAFE_INTEGER), 0)
    .option('--seed <s>', 'run one seed and print its trace hash (the same seed replays the same run, byte for byte)')
    .option('--migrations <m>', 'concurrent migrations per seed (different users, shared providers)', count('--migrations', 1, SIM_MIGRATIONS_MAX), 4)
    .option('--items <k>', 'most items per migration (each user gets 1 to k)', count('--items', 1, SIM_ITEMS_MAX), 2)
    .option('--faults <kinds>', `fault kinds: ${FAULT_KINDS.join(',')} | all | none`, 'all')
    .option('--jobs <j>', 'worker processes', count('--jobs', 1, 64), Math.max(1, Math.min(4, availableParallelism())))
    .option('--trace', 'with --seed: print the whole trace', false)
    .option(
      '--trace-out <file>',
      "write the trace to <file>: with --seed, the seed's; else the first failing seed's, shrunk (default: a fresh file under the temp folder, printed)",
    )
    .option('--no-shrink', 'do not shrink the first failing seed (shrinking runs it again with fewer migrations, items and faults)')
    .option('--mask <numbers>', 'with --seed: fault numbers to switch off, e.g. 0-12,15 (as printed for a shrunk run)')
    .option('--break <kind>', `run a deliberately broken build (${BREAKS.join(', ')}) to see the checker fail`)
    .option('--rogue <attacks>', `a rogue server asks the SAMs for what an honest one never would: ${ROGUE_ATTACKS.join(',')} | all | none`, 'none')
    .option('--pay', 'users try to pay on both phones before, during and after their migration (an item spent twice is a violation)', false)
    .option('--json', 'print the report as JSON', false)
    .option('--data <dir>', "folder for the seeds' LMDB stores (default: a fresh one under /dev/shm or the temp folder, removed after)")
    .option('--worker <job>', 'internal: run as worker <job> of --jobs, one JSON line per seed')
    .action((o: SimCommandOptions) => runSimCommand(o, out));
}

async function runSimCommand(o: SimCommandOptions, out: (line: string) => void): Promise<void> {
  const faults = parseFaultKinds(o.faults);
  if (o.break !== undefined && !(BREAKS as readonly string[]).includes(o.break))
    throw new InvalidArgumentError(`unknown --break "${o.break}"; one of ${BREAKS.join(', ')}`);
  const breakProtocol = o.break as BreakProtocol | undefined;
  const rogue = parseRogue(o.rogue);
  const shape = { migrations: o.migrations, items: o.items, faults, rogue, pay: o.pay, breakProtocol, mask: [] };
  const p: SimRunOptions = { faults, breakProtocol, rogue, shape };
  if (o.worker !== undefined) {
    await workerLoop(
      {
        seeds: o.seeds,
        from: o.from,
        migrations: o.migrations,
        items: o.items,
        faults,
        jobs: o.jobs,
        job: Number(o.worker),
        dataDir: o.data,
        breakProtocol,
        rogue,
        pay: o.pay,
      },
      (l) => process.stdout.write(`${l}\n`),
    );
  } else if (o.seed !== undefined) await runOneSeed(o, o.seed, p, out);
  else await runManySeeds(o, p, out);
}

/** --seed: one seed, its verdict, figures and trace hash (and the whole trace with --trace). */
async function runOneSeed(o: SimCommandOptions, seed: string, p: SimRunOptions, out: (line: string) => void): Promise<void> {
  const mask = parseMask(o.mask ?? '');
  const dir = o.data ?? defaultSimDir();
  mkdirSync(dir, { recursive: true });
  try {
    const r = await runSeed({
      seed,
      migrations: o.migrations,
      items: o.items,
      faults: p.faults,
      dataDir: dir,
      mask,
      breakProtocol: p.breakProtocol,
      rogue: p.rogue,
      pay: o.pay,
      keepTrace: true,
    });
    const traceFile = o.traceOut !== undefined ? writeTrace(o.traceOut, r.seed, r.trace) : undefined;
    if (o.json) out(JSON.stringify({ ...r, traceFile }, null, 2));
    else {
      if (o.trace) for (const l of r.trace) out(l);
      out(`seed ${r.seed}: ${r.ok ? 'ok' : `VIOLATION ${r.violation!.invariant}: ${r.violation!.message}`}`);
      out(`  ${r.stats.delivered} messages, ${r.stats.virtualMs} virtual ms, faults ${fmtCounts(r.stats.faults)}, outcomes ${fmtCounts(r.stats.outcomes)}`);
      out(`  trace hash ${r.traceHash} (${r.stats.events} events; ${traceFile ? `written to ${traceFile}` : '--trace prints it, --trace-out FILE writes it'})`);
    }
    if (!r.ok) process.exitCode = 1;
  } finally {
    if (!o.data) rmSync(dir, { recursive: true, force: true });
  }
}

/** Many seeds in worker processes, with progress on stderr, then the report and the first violation, shrunk. */
async function runManySeeds(o: SimCommandOptions, p: SimRunOptions, out: (line: string) => void): Promise<void> {
  let last = 0;
  let violations = 0;
  const t0 = performance.now();
  const report = await runSeeds({
    seeds: o.seeds,
    from: o.from,
    migrations: o.migrations,
    items: o.items,
    faults: p.faults,
    jobs: o.jobs,
    breakProtocol: p.breakProtocol,
    rogue: p.rogue,
    pay: o.pay,
    dataDir: o.data,
    shrink: o.shrink,
    traceOut: o.traceOut,
    onSeed: (r, done) => {
      if (!r.ok) violations++;
      if (!r.ok) process.stderr.write(`seed ${r.seed}: VIOLATION ${r.violation!.invariant}: ${r.violation!.message}\n`);
      const step = Math.max(1, Math.floor(o.seeds / 20));
      if (!o.json && (done - last >= step || done === o.seeds)) {
        last = done;
        process.stderr.write(`  ${done}/${o.seeds} seeds, ${violations} violations, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
      }
    },
  });
  if (o.json) {
    const { minimal, ...rest } = report;
    out(
      JSON.stringify(
        {
          ...rest,
          minimal: minimal && {
            ...minimal.shape,
            violation: minimal.result.violation,
            runs: minimal.runs,
            command: minimal.command,
            traceFile: minimal.traceFile,
            traceHash: minimal.result.traceHash,
          },
        },
        null,
        2,
      ),
    );
  } else for (const l of formatReport(report, { faults: p.faults, items: o.items })) out(l);
  if (report.firstViolation) {
    if (!o.json) printFirstViolation(report, p.shape, out);
    process.exitCode = 1;
  }
}

/** The first failing seed: how to replay it, and its shrunk run (its shape, the command that replays it, where its trace went). */
function printFirstViolation(report: RunReport, shape: SimRunOptions['shape'], out: (line: string) => void): void {
  const v = report.firstViolation!;
  const m = report.minimal;
  out(`FIRST VIOLATION: seed ${v.seed}: ${v.violation!.invariant}: ${v.violation!.message}`);
  out(`  replay: ${replayCommand({ ...shape, seed: v.seed })} --trace`);
  if (!m) return;
  const s = m.shape;
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? '' : 's'}`;
  const also = `${s.rogue.length ? `, rogue ${s.rogue.join(',')}` : ''}${s.pay ? ', paying' : ''}`;
  out(
    `  shrunk in ${n(m.runs, 'run')} to ${n(s.migrations, 'migration')} of at most ${n(s.items, 'item')}, ` +
      `faults ${s.faults.join(',') || 'none'}: ${m.result.struck.length} struck (of ${v.struck.length}), ${m.result.stats.events} events` +
      `${also}; still ${m.result.violation!.invariant}: ${m.result.violation!.message}`,
  );
  out(`  minimal run: ${m.command}`);
  out(`  it prints trace hash ${m.result.traceHash}; add --trace to see every event`);
  out(`  its trace (${m.result.trace.length} lines) is in ${m.traceFile}; the last lines:`);
  for (const l of m.result.trace.slice(-25)) out(`    ${l}`);
}
