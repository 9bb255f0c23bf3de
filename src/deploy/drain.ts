/**
 * Drain on SIGTERM: the process stops taking new migrations (the server
 * refuses migrate.out and migrate.in with DRAINING), lets the turns it runs
 * and the requests it waits on finish, and only then stops (its links
 * closed, its stores flushed and closed), bounded by a timeout.
 *
 * A safe point is every party of the process idle (no turn running, none
 * queued) with an empty outbox (no request of its own waiting for an
 * answer): then no step is half-asked, and a stop loses nothing a restart
 * would have to send again. A stop that does not reach one in time is still
 * safe (every state is on disk, and a restart resends its outbox); it is
 * only slower to resume.
 */
import type { PartyRuntime } from '../actors/runtime.ts';
import type { Logger } from '../log.ts';
import type { PartyStore } from '../store/party.store.ts';

/** How long a drain waits for a safe point by default (below the 10 s after which `up` and systemd's default kill). */
export const DRAIN_MS_DEFAULT = 5_000;
/** How often the drain looks whether every party reached a safe point. */
const DRAIN_POLL_MS = 25;

export interface DrainReport {
  /** Whether every party reached a safe point before the timeout. */
  safe: boolean;
  waitedMs: number;
  /** Requests still waiting for an answer when the drain ended. */
  awaiting: number;
}

/** The drain's timeout: VALMOVE_DRAIN_MS, else DRAIN_MS_DEFAULT. */
export function drainTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.VALMOVE_DRAIN_MS);
  return env.VALMOVE_DRAIN_MS !== undefined && Number.isInteger(v) && v >= 0 ? v : DRAIN_MS_DEFAULT;
}

function awaitingAnswers(stores: readonly PartyStore[]): number {
  let n = 0;
  for (const s of stores) if (!s.isClosed) n += (s.outbox.getStats() as { entryCount: number }).entryCount;
  return n;
}

/** Refuses new migrations, then waits (bounded) until every party is idle with nothing asked and unanswered. */
export async function drainParties(runtimes: readonly PartyRuntime[], stores: readonly PartyStore[], log: Logger, timeoutMs: number): Promise<DrainReport> {
  for (const r of runtimes) if ('drain' in r && typeof r.drain === 'function') r.drain();
  log.info('draining: new migrations are refused', { timeoutMs });
  const started = Date.now();
  const rounds = Math.ceil(timeoutMs / DRAIN_POLL_MS) + 1;
  for (let i = 0; i < rounds; i++) {
    const idle = runtimes.every((r) => !r.busy && r.queueLength === 0);
    const awaiting = awaitingAnswers(stores);
    if (idle && awaiting === 0) {
      log.info('drained: every party at a safe point', { waitedMs: Date.now() - started });
      return { safe: true, waitedMs: Date.now() - started, awaiting };
    }
    if (Date.now() - started >= timeoutMs) break;
    await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
  }
  const awaiting = awaitingAnswers(stores);
  log.warn('drain timed out: stopping with requests unanswered (a restart sends them again)', { timeoutMs, awaiting });
  return { safe: false, waitedMs: Date.now() - started, awaiting };
}
