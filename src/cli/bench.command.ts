/** `valmove bench`: migrations measured against their floor (issue 7). */
import { floorTableMarkdown } from '../bench/protocolFloor.ts';
import { type Command, InvalidArgumentError } from 'commander';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureUnits } from '../bench/floor.ts';
import {
  BENCH_CONCURRENCY_MAX,
  BENCH_ITEMS_MAX,
  BENCH_SCRYPT,
  benchMatrix,
  DEFAULT_CONCURRENCY,
  DEFAULT_ITEMS,
  QUICK_CONCURRENCY,
  QUICK_ITEMS,
  QUICK_PROCESSES,
  runBench,
} from '../bench/run.ts';
import { unitLines, type Mode } from '../bench/report.ts';

function list(max: number) {
  return (value: string): number[] => {
    const xs = value.split(',').map((s) => Number(s.trim()));
    if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 1 || x > max))
      throw new InvalidArgumentError(`a comma-separated list of whole numbers from 1 to ${max}`);
    return xs;
  };
}

function whole(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number of at least 1');
  return n;
}

export function addBenchCommand(program: Command, out: (line: string) => void): void {
  program
    .command('bench')
    .description(
      'measure migrations (throughput, latency, CPU, messages, commits, memory) against their floor: ' +
        'the crypto and durable commits they must do, priced in the same run',
    )
    .option('--mode <m>', 'embedded | processes | all', 'all')
    .option(
      '--concurrency <list>',
      `migrations in flight (default ${DEFAULT_CONCURRENCY.join(',')}; with --quick ${QUICK_CONCURRENCY.join(',')})`,
      list(BENCH_CONCURRENCY_MAX),
    )
    .option(
      '--items <list>',
      `items per migration (K), each from its own provider, at most ${BENCH_ITEMS_MAX} ` +
        `(default ${DEFAULT_ITEMS.join(',')}; with --quick ${QUICK_ITEMS.join(',')})`,
      list(BENCH_ITEMS_MAX),
    )
    .option('--migrations <n>', 'migrations per configuration, at least the concurrency (default: max(32, concurrency))', whole)
    .option(
      '--quick',
      `a smoke run in under a minute: K ${QUICK_ITEMS.join(',')} × concurrency ${QUICK_CONCURRENCY.join(',')} ` +
        `(processes mode: K ${QUICK_PROCESSES.items.join(',')} × concurrency ${QUICK_PROCESSES.concurrency.join(',')}), ` +
        'tiny counts, short unit measurements; ' +
        'JSON goes to a temp folder unless --out is given',
      false,
    )
    .option(
      '--units',
      'measure the unit costs only (Ed25519, X25519 and AEAD on both crypto backends, node and noble; hashes; durable commits at each --concurrency) ' +
        'and print them; no migrations, no JSON file',
      false,
    )
    .option('--json', 'print the whole report as JSON instead of the table', false)
    .option('--out <dir>', 'folder for the JSON result (default bench/results/)')
    .option(
      '--profile <dir>',
      "write a CPU profile of each configuration's timed part (this process: every party in embedded mode, the phones in processes mode) " +
        'to <dir>/<mode>-k<K>-c<c>.cpuprofile, for Chrome DevTools or speedscope',
    )
    .option('--floor-table', "print the protocol floor's table (the work a migration needs, per item and per migration, and why) and exit", false)
    .action((o: BenchOptions) => benchAction(o, out));
}

/** What `valmove bench` was given. */
type BenchOptions = {
  floorTable: boolean;
  mode: string;
  concurrency?: number[];
  items?: number[];
  migrations?: number;
  quick: boolean;
  units: boolean;
  json: boolean;
  out?: string;
  profile?: string;
};

async function benchAction(o: BenchOptions, out: (line: string) => void): Promise<void> {
  if (o.floorTable) {
    out(floorTableMarkdown());
    return;
  }
  const { concurrency, items, processes } = benchMatrix(o);
  if (o.units) {
    const units = await measureUnits({ batches: concurrency, quick: o.quick, loginScrypt: BENCH_SCRYPT });
    for (const line of o.json ? [JSON.stringify(units, null, 2)] : unitLines(units)) out(line);
    return;
  }
  if (!['embedded', 'processes', 'all'].includes(o.mode)) throw new InvalidArgumentError(`--mode is embedded, processes or all; got "${o.mode}"`);
  const modes: Mode[] = o.mode === 'all' ? ['embedded', 'processes'] : [o.mode as Mode];
  // Smoke runs stay out of bench/results/ (which is kept in git).
  const dir = o.out ?? (o.quick ? join(tmpdir(), 'valmove-bench-results') : 'bench/results');
  requireWritableFolder(dir);
  const report = await runBench({
    modes,
    concurrency,
    items,
    processes,
    migrations: o.migrations,
    quick: o.quick,
    json: o.json,
    out: dir,
    say: out,
    profile: o.profile,
  });
  if (o.json) out(JSON.stringify(report, null, 2));
  else {
    out('');
    out(report.markdown);
    out('');
    out(`JSON: ${report.jsonFile}`);
  }
  const failed = report.results.reduce((a, r) => a + r.failures.length, 0);
  if (failed > 0) throw new Error(`${failed} migration(s) failed; first: ${report.results.find((r) => r.failures.length)?.failures[0]}`);
}

/** The JSON result's folder, checked before minutes of measuring: made if missing, and writable. */
function requireWritableFolder(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new Error(`--out ${dir}: the JSON result can not be written there (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
