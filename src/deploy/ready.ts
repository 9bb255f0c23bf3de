/**
 * `GET /readyz`: whether this process can do its job now. `/healthz` says
 * the process is alive (it serves HTTP); `/readyz` says it is ready:
 *
 *   peers   every link the process dials is up (the server: the admin SAM
 *           and every migration SAM; a terminal: the server, its chip and
 *           each provider's normal SAM). Listeners (admin SAM, provider,
 *           chip) dial nobody: their peers come to them.
 *   store   each party's LMDB takes a write (a probe record, committed and
 *           flushed within READY_WRITE_MS_MAX) and is under its byte budget
 *           (STORE_FULL_FRACTION, where the party refuses new work).
 *   limits  each party's queue, inbox and outbox are under their bounds.
 *
 * 200 `{"status":"ready"}` or 503 `{"status":"not ready","failing":[…]}`
 * naming the checks that fail; with the operator token, `detail` names the
 * party and what is wrong (which peer, how full). The probe write runs at
 * most once per READY_PROBE_EVERY_MS, whoever asks how often: answers in
 * between reuse the last result.
 */
import type { IncomingMessage } from 'node:http';
import { INBOX_RECORDS_MAX, QUEUE_JOBS_MAX, type PartyRuntime, type RuntimeDeps } from '../actors/runtime.ts';
import { systemClock, type Clock } from '../clock.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { ProcessConfig } from './config.ts';
import { bearer, type Auth, type ProcessHttp } from './http.ts';
import { outboxDepth, partyGauges } from './metrics.ts';

/** A /readyz answer is reused for this long: a flood of probes costs one store write per period. */
export const READY_PROBE_EVERY_MS = 1_000;
/** A store that does not commit and flush the probe in this time is not ready. */
export const READY_WRITE_MS_MAX = 2_000;
/** Requests a party sent and has no answer to yet, past which it is not ready: its peers are not answering. */
export const OUTBOX_READY_MAX = 10_000;

export type ReadyCheckName = 'peers' | 'store' | 'limits';

export interface ReadyProblem {
  check: ReadyCheckName;
  party: string;
  problem: string;
}

export interface ReadyReport {
  ready: boolean;
  /** The checks that fail, once each. */
  failing: ReadyCheckName[];
  detail: ReadyProblem[];
}

/** The peers each party of this process dials, by party id: all must be linked for the process to be ready. */
export function requiredPeers(cfg: ProcessConfig): Record<string, string[]> {
  switch (cfg.role) {
    case 'server':
      return { server: ['admin-sam', ...Object.keys(cfg.migrationSams).map((p) => `migration-sam/${p}`)] };
    case 'terminal':
      return { [`terminal/${cfg.name}`]: ['server', 'chip', ...Object.keys(cfg.normalSams).map((p) => `normal-sam/${p}`)] };
    default:
      return {};
  }
}

/** What is wrong with a party's links, store bounds and queues now (no store write). */
export function partyProblems(r: PartyRuntime, store: PartyStore | undefined, needs: readonly string[]): ReadyProblem[] {
  const out: ReadyProblem[] = [];
  const open = new Set(r.openLinks());
  for (const peer of needs) if (!open.has(peer)) out.push({ check: 'peers', party: r.id, problem: `no link to ${peer}` });
  if (r.isStopped) out.push({ check: 'store', party: r.id, problem: 'the party is stopped' });
  if (r.queueLength >= QUEUE_JOBS_MAX) out.push({ check: 'limits', party: r.id, problem: `queue at its bound (${r.queueLength} jobs)` });
  if (!store || store.isClosed) return out;
  if (store.isFull) out.push({ check: 'store', party: r.id, problem: `store past its budget (${store.usedBytes()} of ${store.mapBytes} bytes)` });
  const inbox = store.inboxCount();
  if (inbox >= INBOX_RECORDS_MAX) out.push({ check: 'limits', party: r.id, problem: `inbox at its bound (${inbox} records)` });
  const outbox = outboxDepth(store);
  if (outbox >= OUTBOX_READY_MAX) out.push({ check: 'limits', party: r.id, problem: `outbox past ${OUTBOX_READY_MAX} (${outbox} unanswered requests)` });
  return out;
}

/** Whether the store commits and flushes a probe record within READY_WRITE_MS_MAX. */
async function writable(store: PartyStore, now: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((res) => {
    timer = setTimeout(() => res(`the probe write took over ${READY_WRITE_MS_MAX} ms`), READY_WRITE_MS_MAX);
  });
  try {
    const wrote = store
      .commit(() => store.meta.put('ready-probe', now))
      .then(
        () => undefined,
        (e: unknown) => `the probe write failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    return await Promise.race([wrote, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Readiness of one process: notes each party's store as the process opens
 * it (`watch` wraps the context's `deps`), answers `/readyz`.
 */
export class Readiness {
  readonly stores = new Map<string, PartyStore>();
  private last: { at: number; report: Promise<ReadyReport> } | undefined;

  constructor(
    private readonly needs: Record<string, string[]>,
    private readonly runtimes: () => readonly PartyRuntime[],
    private readonly clock: Clock,
  ) {}

  /** Wraps a process context's `deps` so every party's store is known here. */
  watch(ctx: { deps(id: string, dataDir: string): RuntimeDeps }): void {
    const deps = ctx.deps.bind(ctx); // deps may use `this` (process.ts notes each store it opens)
    ctx.deps = (id, dataDir) => {
      const d = deps(id, dataDir);
      this.stores.set(id, d.store);
      return d;
    };
  }

  /** The report, at most READY_PROBE_EVERY_MS old. */
  report(): Promise<ReadyReport> {
    const now = this.clock.now();
    if (this.last && now - this.last.at < READY_PROBE_EVERY_MS) return this.last.report;
    this.last = { at: now, report: this.measure(now) };
    return this.last.report;
  }

  private async measure(now: number): Promise<ReadyReport> {
    const runtimes = this.runtimes();
    const detail: ReadyProblem[] = [];
    if (runtimes.length === 0) detail.push({ check: 'store', party: '-', problem: 'the parties are still starting' });
    for (const r of runtimes) {
      const store = this.stores.get(r.id);
      detail.push(...partyProblems(r, store, this.needs[r.id] ?? []));
      const wrong = store && !store.isClosed && !r.isStopped ? await writable(store, now) : undefined;
      if (wrong) detail.push({ check: 'store', party: r.id, problem: wrong });
    }
    const failing = [...new Set(detail.map((p) => p.check))];
    return { ready: detail.length === 0, failing, detail };
  }

  /** The /readyz route: anyone learns which checks fail; the operator (`auth` passes) learns the detail. */
  route(operator: Auth): (req: IncomingMessage) => Promise<{ status: number; json: unknown }> {
    return async (req) => {
      const r = await this.report();
      let detail = false;
      try {
        operator(req);
        detail = true;
      } catch {
        // no token: the short answer
      }
      if (r.ready) return { status: 200, json: { status: 'ready' } };
      return { status: 503, json: { status: 'not ready', failing: r.failing, ...(detail ? { detail: r.detail } : {}) } };
    };
  }
}

/**
 * Serves /readyz for a process (its parties' stores noted as the context
 * opens them, the operator's token for the detail) and the parties' gauges
 * of /metrics, read from the same stores.
 */
export function watchParties(
  cfg: ProcessConfig,
  ctx: { http: ProcessHttp; deps(id: string, dataDir: string): RuntimeDeps },
  runtimes: () => readonly PartyRuntime[],
  operatorToken: string | undefined,
): Readiness {
  const ready = new Readiness(requiredPeers(cfg), runtimes, systemClock);
  ready.watch(ctx);
  partyGauges(ctx.http.registry, runtimes, ready.stores, ctx.http.door);
  ctx.http.route('GET', '/readyz', ready.route(bearer(operatorToken, { what: 'readiness detail', token: 'operatorToken', where: `${cfg.id}'s key file` })));
  return ready;
}
