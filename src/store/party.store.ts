/**
 * One LMDB environment per party (architecture.md, src/store/). Every party
 * keeps here, besides its own records: its actors' persisted snapshots, its
 * outbox (requests sent and not yet answered), its inbox (per received
 * request id, the replies it sent, so a duplicate gets the same answer; kept
 * for a retention window, see runtime.ts), and its message sequence number.
 *
 * Bounded: the store has a byte budget (`mapBytes`). lmdb-js never stops at
 * its map size: when a transaction needs pages past the map it doubles the
 * map (its own addition to mdb_page_alloc), so a store only ever fails to
 * commit when the disk (or a file size limit) is full, with "Commit failed
 * (see commitError for details)" and an errno in `commitError` (EIO under a
 * file size limit; ENOSPC on a full disk). The budget is therefore ours to
 * keep: `isFull` says when the pages in use pass STORE_FULL_FRACTION of it,
 * and the runtime then refuses new work (STORE_FULL).
 *
 * Durability rules: never noSync / noMetaSync / mapAsync; a commit is awaited
 * until `flushed`, because with overlappingSync a commit is visible before it
 * is on disk, and a party may speak only of what is on disk.
 */
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { countStore } from '../metrics/counters.ts';

/** A restored snapshot of another machine version fails loudly (architecture.md, the party runtime). */
export interface PersistedActor {
  machine: string;
  version: number;
  snapshot: unknown;
}

export interface OutboxEntry {
  peer: string;
  env: AnyEnvelope;
}

export interface InboxEntry {
  from: string;
  type: string;
  replies: AnyEnvelope[];
  /** When the request arrived (ms, the party's injected clock); 0 in records written before it was kept. */
  at?: number;
  /** The migration the request or its first reply names, if any: the record stays until that migration is settled. */
  mig?: string;
}

/** A store's byte budget (the LMDB map size it opens with): far above what a party needs; the file grows sparsely. */
export const MAP_BYTES = 2 * 1024 ** 3;
/**
 * Past this fraction of its budget in use, a store is full: the party refuses
 * new work and serves work in progress. The rest is headroom for that work
 * (its snapshots, replies and outbox), which a full store must still write.
 */
export const STORE_FULL_FRACTION = 0.9;
/** Named databases per environment (party records + runtime tables). */
export const DATABASES_MAX = 32;

/**
 * 'async' (the default): commits run on LMDB's writer thread and are awaited
 * until flushed, so a process keeps serving while the disk works. 'sync': the
 * commit and its flush happen inside the call (LMDB's transactionSync, still
 * synced to disk), for the simulator, where one process runs every party one
 * message at a time and a writer-thread round trip per message would be most
 * of its time. Both are durable when they return.
 */
export type CommitMode = 'async' | 'sync';

/** What lmdb-js's getStats() reports for one database (mdb_stat). */
interface LmdbStats {
  pageSize: number;
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
  entryCount: number;
}

export class PartyStore {
  readonly env: RootDatabase;
  readonly snapshots: Database<PersistedActor, string>;
  readonly outbox: Database<OutboxEntry, string>;
  readonly inbox: Database<InboxEntry, string>;
  /** The inbox in order of arrival: key [at, request id] (the runtime's sweep reads the oldest first). */
  readonly inboxByTime: Database<1, [number, string]>;
  /** Per sender, the highest request sequence number whose inbox record was pruned (runtime.ts, STALE_REQUEST). */
  readonly inboxFloors: Database<number, string>;
  readonly meta: Database<unknown, string>;
  /** The byte budget (see the file comment). */
  readonly mapBytes: number;
  private readonly dbs = new Map<string, Database<unknown, string>>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly commits: CommitMode,
    mapBytes: number,
  ) {
    mkdirSync(path, { recursive: true });
    this.mapBytes = mapBytes;
    // eventTurnBatching off: with it on, lmdb-js leaves the promise of its event-turn batch unhandled when a
    // commit fails (a full disk), and Node stops the process on an unhandled rejection. Every write here runs
    // inside commit() or commitSync(), which batch on their own.
    this.env = open({ path, mapSize: mapBytes, maxDbs: DATABASES_MAX, eventTurnBatching: false });
    this.snapshots = this.db<PersistedActor>('snapshots');
    this.outbox = this.db<OutboxEntry>('outbox');
    this.inbox = this.db<InboxEntry>('inbox');
    this.inboxByTime = this.env.openDB<1, [number, string]>({ name: 'inbox-by-time' });
    this.inboxFloors = this.db<number>('inbox-floors');
    this.meta = this.db<unknown>('meta');
    // Every database the file holds, opened once here, so usedBytes() counts them all without opening any in a turn.
    for (const name of this.env.getKeys() as Iterable<unknown>) {
      if (typeof name === 'string' && name !== 'inbox-by-time') this.db(name);
    }
  }

  static open(path: string, opts: { commits?: CommitMode; mapBytes?: number } = {}): PartyStore {
    return new PartyStore(path, opts.commits ?? 'async', opts.mapBytes ?? MAP_BYTES);
  }

  db<V>(name: string): Database<V, string> {
    let db = this.dbs.get(name);
    if (!db) {
      db = this.env.openDB<unknown, string>({ name });
      this.dbs.set(name, db);
    }
    return db as Database<V, string>;
  }

  /**
   * Bytes in the pages the store's records use: every database's tree
   * (branch, leaf and overflow pages), the catalog and the free list. Pages
   * freed by deletes are not counted (LMDB reuses them), so this falls when
   * records are pruned, while the file keeps its size.
   */
  usedBytes(): number {
    const stats = this.env.getStats() as LmdbStats & { root?: LmdbStats; free?: LmdbStats };
    const pages = (s: LmdbStats | undefined) => (s ? s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages : 0);
    let used = 2 + pages(stats.root) + pages(stats.free); // the two meta pages
    for (const db of this.dbs.values()) used += pages(db.getStats() as LmdbStats);
    used += pages(this.inboxByTime.getStats() as LmdbStats);
    return used * stats.pageSize;
  }

  /** Whether the pages in use passed STORE_FULL_FRACTION of the budget. */
  get isFull(): boolean {
    return this.usedBytes() >= STORE_FULL_FRACTION * this.mapBytes;
  }

  /** Records in the inbox (LMDB keeps the count: no scan). */
  inboxCount(): number {
    return (this.inbox.getStats() as LmdbStats).entryCount;
  }

  /**
   * Runs `fn` in one write transaction and resolves once that transaction is
   * durable. Writes queued by `fn` commit together or not at all.
   */
  async commit<T>(fn: () => T): Promise<T> {
    if (this.commits === 'sync') {
      countStore(this.path, 'commit.sync');
      return this.env.transactionSync(fn);
    }
    countStore(this.path, 'commit');
    const result = await this.env.transaction(fn);
    await this.env.flushed;
    return result;
  }

  /** A synchronous transaction, for compare-and-set records (the admin SAM's decision). Await flushed() after. */
  commitSync<T>(fn: () => T): T {
    countStore(this.path, 'commit.sync');
    return this.env.transactionSync(fn);
  }

  async flushed(): Promise<void> {
    countStore(this.path, 'flush');
    await this.env.flushed;
  }

  /** How commits are made ('async': on LMDB's writer thread, awaited until flushed; 'sync': inside the call). */
  get commitMode(): CommitMode {
    return this.commits;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.env.flushed;
    await this.env.close();
  }
}
