/**
 * A user who keeps at it: logs in again when a login was lost, asks again
 * when a request vanished with a crashed terminal, and carries the migration
 * through both phases. It reads the real state of the parties (which may be
 * restarted runtimes) and gives up after a bounded time.
 */
import type { MigrationContext } from '../../src/machines/migration.machine.ts';
import type { TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import type { World } from './world.ts';

export interface DriveResult {
  mig: string;
  state: string;
  context: MigrationContext;
  ms: number;
}

const FINAL = ['completed', 'rolledBack', 'refused'];

function account(t: TerminalRuntime): string {
  const v = t.state() as { account?: unknown } | undefined;
  const a = v?.account;
  return typeof a === 'string' ? a : a && typeof a === 'object' ? Object.keys(a)[0]! : 'unknown';
}

export async function driveMigration(world: World, opts: { timeoutMs?: number; cancelAfterSource?: boolean } = {}): Promise<DriveResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const nudge = (p: Promise<unknown>) => p.catch(() => {});
  let lastAction = 0;
  while (Date.now() - started < timeoutMs) {
    const s = world.system;
    const oldT = s.party<TerminalRuntime>(world.oldPhone.id);
    const newT = s.party<TerminalRuntime>(world.newPhone.id);
    const mig = s.server.isStopped ? undefined : s.server.migrationIds()[0];
    const now = Date.now();
    const act = now - lastAction > 150;
    if (mig && !s.server.isStopped) {
      const state = JSON.stringify(s.server.migrationState(mig));
      const plain = state.replace(/"/g, '');
      if (FINAL.includes(plain)) {
        return { mig, state: plain, context: s.server.migration(mig)!, ms: now - started };
      }
      if (act) {
        if (state.includes('awaitingDestination') || state.includes('awaitingDestinationWipe')) {
          if (opts.cancelAfterSource && state.includes('"awaitingDestination"')) {
            if (account(oldT) === 'loggedOut') nudge(oldT.login(world.user, world.password));
            else if (account(oldT) === 'loggedIn') nudge(oldT.cancel(mig));
          } else if (account(newT) === 'loggedOut') nudge(newT.login(world.user, world.password));
          else if (account(newT) === 'loggedIn') nudge(newT.migrateIn({ mig }));
          lastAction = now;
        } else if (state.includes('awaitingSource')) {
          if (account(oldT) === 'loggedOut') nudge(oldT.login(world.user, world.password));
          else if (account(oldT) === 'loggedIn') nudge(oldT.migrateOut());
          lastAction = now;
        }
      }
    } else if (!mig && act && !s.server.isStopped) {
      if (account(oldT) === 'loggedOut') nudge(oldT.login(world.user, world.password));
      else if (account(oldT) === 'loggedIn') nudge(oldT.migrateOut({ destination: world.destination.serial }));
      lastAction = now;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const s = world.system;
  const mig = s.server.migrationIds()[0];
  throw new Error(
    `the migration did not end within ${timeoutMs} ms: ${mig ? JSON.stringify(s.server.migrationState(mig)) : 'never started'}; ` +
      `terminals ${JSON.stringify(s.party<TerminalRuntime>(world.oldPhone.id).state())} / ${JSON.stringify(s.party<TerminalRuntime>(world.newPhone.id).state())}`,
  );
}
