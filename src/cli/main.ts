/**
 * The `valmove` command. Each subcommand is one job a user of valmove does;
 * `valmove --help` lists them.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
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
import { lostSourceDemo, type DemoFlags } from './demoRecovery.ts';
import { addReceiptCommand } from './receipt.command.ts';
import { runDemo, DEMO_ITEMS_MAX, type DemoOptions } from './demo.ts';
import { CANCELLABLE_STEPS, cancelAtProblem } from '../fixtures/demoFlow.ts';

/** The demo's options as the command line gives them (the output is the command's). */
type DemoCliOptions = Omit<DemoOptions, 'out'>;
import { onlyProblem } from '../fixtures/demoSelection.ts';
import { providerList } from './selection.options.ts';

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not a whole number');
  return n;
}

export function buildCli(out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Command {
  const program = new Command();
  program.name('valmove').description('Move stored value (e-money, passes, tickets, points) from one secure chip to another through one server.');
  program.version(packageVersion(), '-V, --version', 'print the version of valmove');
  // Every command, the ones added later too, inherits these: commander throws instead of exiting, and main() maps the code.
  program.exitOverride();
  // The program's options (--version, --help) only before a command's name: a command's subcommand then gets its own
  // options even when the command has one of the same name (`keygen --dir`, `keygen rotate --dir`).
  program.enablePositionalOptions();
  program.configureOutput({
    outputError: (text, write) => {
      usageTold = true;
      write(text);
    },
  });

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
    .option('--lost-source', 'the old phone is lost: report it, and the providers re-issue its items on the new one from their ledgers', false)
    .option('--cancel-at <step>', `the user cancels the migration at that step (${CANCELLABLE_STEPS[0]}-S14): a rollback; exit 0 when it ends rolledBack`)
    .option('--only <providers>', "move only these providers' items (e.g. emoney); the others stay spendable on the source", providerList)
    .action(async (o: DemoCliOptions & DemoFlags) => {
      if (o.items < 1 || o.items > DEMO_ITEMS_MAX) {
        program.error(`error: --items must be from 1 to ${DEMO_ITEMS_MAX}; got ${o.items}`, { exitCode: 2 });
      }
      if (o.lostSource && (o.cancelAt !== undefined || o.crashAt !== undefined || o.faults !== undefined || o.only !== undefined)) {
        program.error('error: --lost-source runs alone: not with --cancel-at, --only, --crash-at or --faults', { exitCode: 2 });
      }
      if (o.lostSource) return lostSourceDemo(o, out);
      const cancelProblem =
        o.cancelAt === undefined
          ? undefined
          : cancelAtProblem(o.cancelAt, o.crashAt !== undefined || o.faults !== undefined ? '--crash-at or --faults' : undefined);
      if (cancelProblem) program.error(`error: ${cancelProblem}`, { exitCode: 2 });
      const onlyError = onlyProblem(o.only, o.items);
      if (onlyError) program.error(`error: ${onlyError}`, { exitCode: 2 });
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
        cancelAt: o.cancelAt,
        only: o.only,
      });
      if (o.json) out(JSON.stringify(report, null, 2));
      // Done is what was asked: a completed migration, or with --cancel-at, a completed rollback.
      if (report.outcome !== (o.cancelAt ? 'rolledBack' : 'completed')) process.exitCode = 1;
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
  addReceiptCommand(program, out);
  return program;
}

/** The version in package.json. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/**
 * The exit codes of every command (docs/cli.md): 0 done; 1 refused or failed, the reason on
 * stderr; 2 a usage error (unknown command or option, a missing or bad value). Commands
 * say 1 by setting process.exitCode or throwing; a usage error is any CommanderError
 * (commander's own, or an InvalidArgumentError an action throws).
 */
export const EXIT = { done: 0, refused: 1, usage: 2 } as const;

/** Set when commander itself printed a usage error (so main does not print it twice). */
let usageTold = false;

function exitCodeOf(e: unknown): number {
  if (e instanceof CommanderError) {
    // --help and --version end in a CommanderError with exit code 0; `valmove` with no command shows help with 1: usage.
    if (e.exitCode === EXIT.done) return EXIT.done;
    if (!usageTold) process.stderr.write(`error: ${e.message}\n`);
    return EXIT.usage;
  }
  process.stderr.write(`valmove: ${e instanceof Error ? e.message : String(e)}\n`);
  return EXIT.refused;
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  // Output piped into `head` or `less` that stops reading: stop quietly, as Unix tools do.
  if (process.stdout.listenerCount('error') === 0) {
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
  // A bad VALMOVE_CRYPTO is a usage error, told before anything runs: one line, exit 2, as commander's own.
  try {
    forcedBackendName();
  } catch (e) {
    if (!(e instanceof CryptoChoiceError)) throw e;
    process.stderr.write(`error: ${e.message}\n`);
    return EXIT.usage;
  }
  usageTold = false;
  process.exitCode = undefined; // a command says 1 by setting it (the last run's, in a test calling main() again, does not count)
  try {
    await buildCli().parseAsync(argv);
    return typeof process.exitCode === 'number' && process.exitCode !== EXIT.done ? EXIT.refused : EXIT.done;
  } catch (e: unknown) {
    return exitCodeOf(e);
  }
}
