/**
 * The operator's store commands: `valmove backup` (a hot copy of a running
 * party's stores) and `valmove restore` (a copy put back, the party stopped).
 * What restoring an older copy means per party: docs/deploying.md.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../deploy/config.ts';
import { backupParty, BackupError, restoreParty } from '../deploy/backup.ts';

type Out = (line: string) => void;

/** A refusal: its reason on stderr, exit code 1. */
function refused(e: unknown): void {
  if (!(e instanceof BackupError)) throw e;
  process.stderr.write(`refused: ${e.message}\n`);
  process.exitCode = 1;
}

export function addOpsCommands(program: Command, out: Out): void {
  program
    .command('backup')
    .description("a consistent copy of a party's LMDB stores, taken while it runs")
    .requiredOption('--config <file>', "the party's process config")
    .requiredOption('--to <dir>', 'a new or empty folder for the copy')
    .option('--compact', 'leave free pages out of the copy (slower, smaller)', false)
    .action(async (o: { config: string; to: string; compact: boolean }) => {
      try {
        const m = await backupParty(loadConfig(o.config), resolve(o.to), { compact: o.compact });
        out(`backup of ${m.role} ${m.id} written to ${resolve(o.to)} (${m.stores.map((s) => s.from).join(', ')}; taken ${m.takenAt})`);
      } catch (e) {
        refused(e);
      }
    });
  program
    .command('restore')
    .description("put a backup in place of a stopped party's stores (see docs/deploying.md before restoring an older copy)")
    .requiredOption('--config <file>', "the party's process config")
    .requiredOption('--from <dir>', 'a folder written by `valmove backup`')
    .option('--force', 'replace a data folder that holds stores (it is moved aside, not deleted)', false)
    .option('--accept-risk', 'an admin SAM, provider or chip: restore after the procedure in docs/deploying.md', false)
    .action(async (o: { config: string; from: string; force: boolean; acceptRisk: boolean }) => {
      try {
        const r = await restoreParty(loadConfig(o.config), resolve(o.from), { force: o.force, acceptRisk: o.acceptRisk });
        out(`restored ${r.manifest.role} ${r.manifest.id} from the backup taken ${r.manifest.takenAt}`);
        for (const a of r.movedAside) out(`  the replaced data folder is kept at ${a}`);
      } catch (e) {
        refused(e);
      }
    });
}
