/**
 * A user who keeps at it, for the embedded system: logs in again when a
 * login was lost, asks again when a request vanished with a crashed
 * terminal, carries the migration through both phases, and can cancel. It
 * reads the real state of the parties (which may be restarted runtimes) and
 * gives up after a bounded time. The demo uses it when faults are on; the
 * reliability tests use it always.
 */
import { statePath } from './status.ts';
import type { EmbeddedSystem } from './system.ts';
import type { MigrationContext } from '../machines/migration.machine.ts';
import type { TerminalRuntime } from './terminal.actor.ts';

export interface DriveOptions {
  user: string;
  password: string;
  /** Terminal party ids: the one holding the source chip and the one holding the destination. */
  source: string;
  destination: string;
  destinationSerial: string;
  /** A selective migration: only these providers' items move (selection.ts). */
  only?: string[];
  timeoutMs?: number;
  /** Cancel as soon as the source phase is done (from the source terminal). */
  cancelAfterSource?: boolean;
  /** How often the user looks again (ms). */
  pollMs?: number;
}

export interface DriveResult {
  mig: string;
  state: string;
  context: MigrationContext;
  ms: number;
}

const FINAL = ['completed', 'rolledBack', 'refused'];
/** The user waits this long after an action before acting again (requests take a moment to land). */
const PATIENCE_MS = 150;

function account(t: TerminalRuntime): string {
  const v = t.state() as { account?: unknown } | undefined;
  const a = v?.account;
  return typeof a === 'string' ? a : a && typeof a === 'object' ? Object.keys(a)[0]! : 'unknown';
}

export async function driveMigration(system: EmbeddedSystem, o: DriveOptions): Promise<DriveResult> {
  const started = Date.now();
  const timeoutMs = o.timeoutMs ?? 60_000;
  const nudge = (p: Promise<unknown>) => p.catch(() => {});
  // The migration this user starts is the first the server did not know before: an earlier one (the issuance
  // that filled the source chip, say) is not it, finished or not.
  const known = new Set(system.server.migrationIds());
  const ours = () => system.server.migrationIds().find((m) => !known.has(m));
  let lastAction = 0;
  while (Date.now() - started < timeoutMs) {
    const oldT = system.party<TerminalRuntime>(o.source);
    const newT = system.party<TerminalRuntime>(o.destination);
    const up = !system.server.isStopped;
    const mig = up ? ours() : undefined;
    const now = Date.now();
    const act = now - lastAction > PATIENCE_MS;
    /** Logs the terminal in if it is logged out; true when it did (the terminal then has nothing else to do this round). */
    const login = (t: TerminalRuntime): boolean => {
      if (account(t) !== 'loggedOut') return false;
      nudge(t.login(o.user, o.password));
      return true;
    };
    if (up && mig) {
      const state = statePath(system.server.migrationState(mig));
      if (FINAL.includes(state)) return { mig, state, context: system.server.migration(mig)!, ms: now - started };
      if (act) {
        if (state === 'awaitingDestination' && o.cancelAfterSource) {
          if (!login(oldT) && account(oldT) === 'loggedIn') nudge(oldT.cancel(mig));
        } else if (state === 'awaitingDestination' || state === 'rollingBack.awaitingDestinationWipe') {
          if (!login(newT) && account(newT) === 'loggedIn') nudge(newT.migrateIn({ mig }));
        } else if (state === 'rollingBack.awaitingSource') {
          if (!login(oldT) && account(oldT) === 'loggedIn') nudge(oldT.migrateOut());
        }
        lastAction = now;
      }
    } else if (up && act) {
      if (!login(oldT) && account(oldT) === 'loggedIn') nudge(oldT.migrateOut({ destination: o.destinationSerial, ...(o.only ? { only: o.only } : {}) }));
      lastAction = now;
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 10));
  }
  const mig = system.server.isStopped ? undefined : ours();
  throw new Error(
    `the migration did not end within ${timeoutMs} ms: ${mig ? statePath(system.server.migrationState(mig)) : 'never started'}; ` +
      `terminals ${JSON.stringify(system.party<TerminalRuntime>(o.source).state())} / ${JSON.stringify(system.party<TerminalRuntime>(o.destination).state())}`,
  );
}
