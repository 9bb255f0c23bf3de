/**
 * One LMDB environment per party (architecture.md, src/store/). Every party
 * keeps here, besides its own records: its actors' persisted snapshots, its
 * outbox (requests sent and not yet answered), its inbox (per received
 * message id, the replies it sent, so a duplicate gets the same answer), and
 * its message sequence number.
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
}

/** LMDB map size: far above what a party needs; the file grows sparsely. */
export const MAP_BYTES = 2 * 1024 ** 3;
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

export class PartyStore {
  readonly env: RootDatabase;
  readonly snapshots: Database<PersistedActor, string>;
  readonly outbox: Database<OutboxEntry, string>;
  readonly inbox: Database<InboxEntry, string>;
  readonly meta: Database<unknown, string>;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly commits: CommitMode,
  ) {
    mkdirSync(path, { recursive: true });
    this.env = open({ path, mapSize: MAP_BYTES, maxDbs: DATABASES_MAX });
    this.snapshots = this.env.openDB<PersistedActor, string>({ name: 'snapshots' });
    this.outbox = this.env.openDB<OutboxEntry, string>({ name: 'outbox' });
    this.inbox = this.env.openDB<InboxEntry, string>({ name: 'inbox' });
    this.meta = this.env.openDB<unknown, string>({ name: 'meta' });
  }

  static open(path: string, opts: { commits?: CommitMode } = {}): PartyStore {
    return new PartyStore(path, opts.commits ?? 'async');
  }

  db<V>(name: string): Database<V, string> {
    return this.env.openDB<V, string>({ name });
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
