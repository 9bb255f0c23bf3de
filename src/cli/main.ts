/**
 * The `valmove` command. Each subcommand is one job a user of valmove does;
 * `valmove --help` lists them.
 */
import { Command, InvalidArgumentError } from 'commander';
import { CryptoChoiceError, forcedBackendName } from '../crypto/index.ts';
import { addDeployCommands } from './deploy.commands.ts';
import { addOpsCommands } from './ops.commands.ts';
import { addProviderCommands } from './provider.commands.ts';
import { addAttackCommand } from './attack.command.ts';
import { addInspectCommand } from './inspect.command.ts';
import { addChartsCommand } from './charts.command.ts';
import { addPathsCommand } from './paths.command.ts';
import { addBenchCommand } from './bench.command.ts';
import { addTraceCommand } from './trace.command.ts';
import { addSimCommand } from './sim.command.ts';
import { addStepsCommand } from './steps.command.ts';
import { runDemo, DEMO_ITEMS_MAX } from './demo.ts';

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not a whole number');
  return n;
}

export function buildCli(out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Command {
  const program = new Command();
  program.name('valmove').description('Move stored value (e-money, passes, tickets, points) from one secure chip to another through one server.');

  program
    .command('demo')
    .description('run a full migration with every party embedded in this process, LMDB under a data folder')
    .option('--items <n>', `value items to move, one per provider (1-${DEMO_ITEMS_MAX})`, wholeNumber, 3)
    .option('--data <dir>', "data folder for every party's LMDB (default: a fresh folder under ./data)")
    .option('--json', 'print one machine-readable report instead of the progress and tables', false)
    .option('--crash-at <party:step:point>', 'crash that party at that point of that step once, and restart it from its LMDB (e.g. server:S7:after-persist)')
    .option('--faults <spec>', 'lose, repeat, reorder or delay messages on every link, e.g. drop=0.2,dup=0.1,reorder=0.1,delay=0.1')
    .option('--seed <n>', 'seed of the fault choices (the same seed, the same faults)', wholeNumber)
    .option('--record <file>', 'record every envelope (type, parties, sizes; never content) and state change to a JSON Lines run file for `valmove trace`')
    .option('--inspect <url>', "stream the same records to a live page's feed, e.g. ws://127.0.0.1:PORT/feed")
    .action(async (o: { items: number; data?: string; json: boolean; crashAt?: string; faults?: string; seed?: number; record?: string; inspect?: string }) => {
      if (o.items < 1 || o.items > DEMO_ITEMS_MAX) {
        program.error(`error: --items must be from 1 to ${DEMO_ITEMS_MAX}; got ${o.items}`, { exitCode: 2 });
      }
      const report = await runDemo({
        items: o.items,
        data: o.data,
        json: o.json,
        out,
        crashAt: o.crashAt,
        faults: o.faults,
        seed: o.seed,
        record: o.record,
        inspect: o.inspect,
      });
      if (o.json) out(JSON.stringify(report, null, 2));
      if (report.outcome !== 'completed') process.exitCode = 1;
    });

  addDeployCommands(program, out);
  addOpsCommands(program, out);
  addProviderCommands(program, out);
  addAttackCommand(program, out);
  addInspectCommand(program, out);
  addPathsCommand(program, out);
  addBenchCommand(program, out);
  addChartsCommand(program, out);
  addTraceCommand(program, out);
  addSimCommand(program, out);
  addStepsCommand(program, out);
  return program;
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  // Output piped into `head` or `less` that stops reading: stop quietly, as Unix tools do.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  // A bad VALMOVE_CRYPTO is a usage error, told before anything runs: one line, exit 2, as commander's own.
  try {
    forcedBackendName();
  } catch (e) {
    if (!(e instanceof CryptoChoiceError)) throw e;
    process.stderr.write(`error: ${e.message}\n`);
    return 2;
  }
  try {
    await buildCli().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e: unknown) {
    process.stderr.write(`valmove: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
