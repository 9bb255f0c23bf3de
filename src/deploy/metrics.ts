/**
 * The process's Prometheus metrics (`GET /metrics`, prom-client), named as
 * Prometheus asks: a count that only grows is a counter ending in `_total`;
 * a unit is in the name (`_seconds`, `_bytes`); every metric has its HELP
 * and TYPE lines (test/deploy/metrics.test.ts parses the exposition).
 *
 * Three sources: the observer the parties report to as things happen
 * (messages, turns, refusals, retries, migrations, lockouts); issue 7's work
 * counters, read when scraped (crypto, LMDB); and the parties themselves,
 * read when scraped (`partyGauges`: links, queues, inbox, outbox, store
 * bytes, migrations in flight by phase). Labels carry names and kinds,
 * never a key, a value or a user's name.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PartyRuntime, RuntimeObserver } from '../actors/runtime.ts';
import { ServerRuntime } from '../actors/server.actor.ts';
import { statePath } from '../actors/status.ts';
import { snapshot, type Tally } from '../metrics/counters.ts';
import type { Door } from '../transport/door.ts';
import type { PartyStore } from '../store/party.store.ts';

/** Migration durations, s: a migration takes from well under a second (one item, loopback) to its deadline (minutes). */
export const MIGRATION_SECONDS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/**
 * prom-client's process and Node.js metrics, prefixed valmove_, without its
 * three gauges named `_total` (active handles, requests, resources: a name
 * Prometheus keeps for counters); `sum()` of the by-type gauges gives them.
 */
export function defaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: 'valmove_' });
  for (const n of ['resources', 'handles', 'requests']) registry.removeSingleMetric(`valmove_nodejs_active_${n}_total`);
}

/** A counter of this registry, labelled by `labelNames`. */
function counter(registry: Registry, name: string, help: string, labelNames: string[]): Counter {
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** The process's metrics, registered in the order /metrics lists them; the observer the parties report to. */
export function processMetrics(registry: Registry): { observer: RuntimeObserver; refusals: Counter } {
  const messages = counter(registry, 'valmove_messages_total', 'Envelopes handled (in) and sent (out), by type', ['party', 'direction', 'type']);
  const bytes = counter(registry, 'valmove_message_bytes_total', 'Envelope bytes handled and sent', ['party', 'direction']);
  const turns = new Histogram({
    name: 'valmove_turn_seconds',
    help: 'Duration of one party turn: validate, machine, commit to LMDB, send',
    labelNames: ['party', 'committed'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: [registry],
  });
  const m = migrationMetrics(registry);
  const observer: RuntimeObserver = {
    refused(limit) {
      refusals.inc({ limit });
    },
    message(party, direction, type, n) {
      messages.inc({ party, direction, type });
      bytes.inc({ party, direction }, n);
    },
    turn(party, ms, committed) {
      turns.observe({ party, committed: String(committed) }, ms / 1000);
    },
    ...m,
  };
  workCounters(registry);
  new Gauge({ name: 'valmove_up', help: '1 while the process serves', registers: [registry] }).set(1);
  const refusals = counter(
    registry,
    'valmove_refused_total',
    'Connections, handshakes, messages and requests refused at the door, by limit (src/transport/limits.ts)',
    ['limit'],
  );
  return { observer, refusals };
}

/** Migrations started and ended (by outcome), their durations, step retries and login lockouts: the observer's part for them. */
function migrationMetrics(registry: Registry): Required<Pick<RuntimeObserver, 'retried' | 'resent' | 'migrationStarted' | 'migrationEnded' | 'lockedOut'>> {
  const started = counter(
    registry,
    'valmove_migrations_started_total',
    'Migrations (and issuances) the server started, counted once their first record is on disk',
    ['party'],
  );
  const ended = counter(
    registry,
    'valmove_migrations_ended_total',
    'Migrations that ended, by outcome: completed, rolledBack, refused (refused before anything was locked)',
    ['party', 'outcome'],
  );
  const seconds = new Histogram({
    name: 'valmove_migration_duration_seconds',
    help: "Time from a migration's start to its end, by outcome (the server's clock)",
    labelNames: ['party', 'outcome'],
    buckets: MIGRATION_SECONDS_BUCKETS,
    registers: [registry],
  });
  const retries = counter(registry, 'valmove_step_retries_total', 'Protocol steps tried again after a failure (a retry timer fired), by party', ['party']);
  const resends = counter(registry, 'valmove_requests_resent_total', 'Requests sent again because no answer came in time, by party', ['party']);
  const lockouts = counter(registry, 'valmove_login_lockouts_total', 'Failed logins that locked a user out (issue 8; valmove user unlock clears one)', [
    'party',
  ]);
  return {
    migrationStarted: (party) => started.inc({ party }),
    migrationEnded(party, outcome, s) {
      ended.inc({ party, outcome });
      if (s !== undefined) seconds.observe({ party, outcome }, s);
    },
    retried: (party) => retries.inc({ party }),
    resent: (party) => resends.inc({ party }),
    lockedOut: (party) => lockouts.inc({ party }),
  };
}

/** Issue 7's work counters: name, help, labels (who, kind), the snapshot's table and the tally's field. */
const WORK_COUNTERS: ReadonlyArray<[string, string, [string, string], 'crypto' | 'backends' | 'stores', 'n' | 'bytes']> = [
  ['valmove_crypto_ops_total', 'Crypto operations, by party and kind (src/metrics/counters.ts)', ['party', 'kind'], 'crypto', 'n'],
  ['valmove_crypto_bytes_total', 'Bytes through AEAD and hash operations, by party and kind', ['party', 'kind'], 'crypto', 'bytes'],
  [
    'valmove_crypto_backend_ops_total',
    'Calls into each crypto backend (node: node:crypto; noble: @noble), by party (issue 19: which backend each party runs)',
    ['party', 'backend'],
    'backends',
    'n',
  ],
  ['valmove_lmdb_ops_total', 'Durable LMDB operations (commit, commit.sync, flush), by store folder', ['store', 'kind'], 'stores', 'n'],
];

/** Issue 7's work counters (crypto by party and kind, durable LMDB operations by store folder), read when scraped. */
function workCounters(registry: Registry): void {
  for (const [name, help, [who, kind], table, field] of WORK_COUNTERS) {
    scraped(registry, 'counter', name, help, [who, kind], () => {
      const out: Rows = [];
      for (const [a, row] of Object.entries(snapshot()[table] as Record<string, Partial<Record<string, Tally>>>)) {
        for (const [k, t] of Object.entries(row)) if (t?.[field]) out.push([{ [who]: a, [kind]: k }, t[field]]);
      }
      return out;
    });
  }
}

/** Label sets and their values, read when scraped. */
type Rows = Array<[Record<string, string>, number]>;

/** A metric set from `rows` when scraped: a counter (what it reads only grows) or a gauge. */
function scraped(registry: Registry, type: 'counter' | 'gauge', name: string, help: string, labelNames: string[], rows: () => Rows): void {
  const opts = { name, help, labelNames, registers: [registry] };
  if (type === 'gauge') {
    new Gauge({
      ...opts,
      collect() {
        this.reset();
        for (const [labels, v] of rows()) this.set(labels, v);
      },
    });
  } else {
    new Counter({
      ...opts,
      collect() {
        this.reset();
        for (const [labels, v] of rows()) this.inc(labels, v);
      },
    });
  }
}

/** Requests in the store's outbox (LMDB keeps the count: no scan). */
export function outboxDepth(store: PartyStore): number {
  return (store.outbox.getStats() as { entryCount: number }).entryCount;
}

/** Each party's gauges: name, help, how it is read. */
const PARTY_GAUGES: ReadonlyArray<[string, string, (r: PartyRuntime, s: PartyStore) => number]> = [
  ['valmove_links_open', 'Peers each party has an open link to', (r) => r.openLinks().length],
  ['valmove_queue_jobs', "Jobs waiting in each party's queue", (r) => r.queueLength],
  ['valmove_inbox_records', 'Requests each party keeps the answer to (its inbox)', (_r, s) => s.inboxCount()],
  ['valmove_outbox_requests', 'Requests each party sent and has no answer to yet (its outbox depth)', (_r, s) => outboxDepth(s)],
  ['valmove_store_used_bytes', "Bytes in the LMDB pages each party's records use", (_r, s) => s.usedBytes()],
];

/** The parties' own state, read when scraped: links, connections, queue, inbox, outbox, store bytes, migrations in flight. */
export function partyGauges(registry: Registry, runtimes: () => readonly PartyRuntime[], stores: ReadonlyMap<string, PartyStore>, door: Door): void {
  const open = (r: PartyRuntime) => stores.get(r.id) !== undefined && !stores.get(r.id)!.isClosed;
  const per = (f: (r: PartyRuntime, s: PartyStore) => number) => () =>
    runtimes()
      .filter(open)
      .map((r): Rows[number] => [{ party: r.id }, f(r, stores.get(r.id)!)]);
  for (const [name, help, f] of PARTY_GAUGES) scraped(registry, 'gauge', name, help, ['party'], per(f));
  scraped(registry, 'gauge', 'valmove_connections', 'WebSocket connections at the door: open links, handshakes pending', ['state'], () => [
    [{ state: 'open' }, door.counts.links],
    [{ state: 'pending' }, door.counts.pending],
  ]);
  scraped(registry, 'gauge', 'valmove_migrations_in_flight', 'Migrations running now, by phase (the top state of the migration machine)', ['phase'], () => {
    const server = runtimes().find((r): r is ServerRuntime => r instanceof ServerRuntime && !r.isStopped);
    if (!server) return [];
    const phases = new Map<string, number>();
    for (const m of server.liveMigrationIds()) {
      const phase = statePath(server.migrationState(m)).split('.')[0] ?? '';
      phases.set(phase, (phases.get(phase) ?? 0) + 1);
    }
    return [...phases].map(([phase, n]) => [{ phase }, n]);
  });
}
