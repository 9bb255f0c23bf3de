/**
 * `valmove attack`: flood a local deployment as a stranger would and print
 * what it cost (see src/attack/run.ts); `npm run attack` runs it with the
 * issue's figures. `attack-worker` is its worker process (not for people).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { runFloodJob, type FloodJob } from '../attack/flood.ts';
import { describeAttack, reportFileName, runAttack } from '../attack/run.ts';

type Out = (line: string) => void;

function whole(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('not a whole number');
  return n;
}

export function addAttackCommand(program: Command, out: Out): void {
  program
    .command('attack')
    .description('flood a local deployment (idle sockets, a burst of hellos, anonymous requests) and measure the server and a legitimate migration')
    .option('--idle <n>', 'sockets that upgrade and never say hello', whole, 20_000)
    .option('--hellos <n>', 'channel hellos with random keys, at once', whole, 1_500)
    .option('--requests <n>', 'anonymous requests (login.begin with fresh ids)', whole, 10_000)
    .option('--migrations <n>', 'legitimate migrations timed before the burst, and as many during it (the ratio is of their medians)', whole, 3)
    .option('--addresses <n>', 'local addresses the burst comes from (127.0.0.2 on; 1: one host, more: a botnet)', whole, 32)
    .option('--providers <n>', 'providers (items per migration)', whole, 3)
    .option('--dir <dir>', 'deployment folder (default: a fresh ./deploy/attack-<time>)')
    .option('--keep', 'leave the deployment running', false)
    .option('--out <dir>', 'also write the report as JSON into this folder (e.g. bench/results)')
    .option('--json', 'print the report as JSON', false)
    .action(
      async (o: {
        idle: number;
        hellos: number;
        requests: number;
        migrations: number;
        addresses: number;
        providers: number;
        dir?: string;
        keep: boolean;
        out?: string;
        json: boolean;
      }) => {
        if (o.providers < 1 || o.providers > 20) program.error('error: --providers must be from 1 to 20', { exitCode: 2 });
        if (o.migrations < 1 || o.migrations > 10) program.error('error: --migrations must be from 1 to 10', { exitCode: 2 });
        if (o.addresses < 1 || o.addresses > 250) program.error('error: --addresses must be from 1 to 250', { exitCode: 2 });
        const report = await runAttack({ ...o, out: o.json ? undefined : out });
        if (o.out) {
          mkdirSync(o.out, { recursive: true });
          const file = join(o.out, reportFileName());
          writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
          if (!o.json) out(`report written to ${file}`);
        }
        if (o.json) out(JSON.stringify(report, null, 2));
        else for (const l of describeAttack(report)) out(l);
        if (report.burst.outcome !== 'completed') process.exitCode = 1;
      },
    );

  program
    .command('attack-worker', { hidden: true })
    .requiredOption('--job <json>', 'the flood job')
    .action(async (o: { job: string }) => {
      const result = await runFloodJob(JSON.parse(o.job) as FloodJob);
      out(JSON.stringify(result));
      // Sockets the party never closed must not keep the worker alive.
      process.exit(0);
    });
}
