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

export class PartyStore {
  readonly env: RootDatabase;
  readonly snapshots: Database<PersistedActor, string>;
  readonly outbox: Database<OutboxEntry, string>;
  readonly inbox: Database<InboxEntry, string>;
  readonly meta: Database<unknown, string>;
  private closed = false;

  private constructor(readonly path: string) {
    mkdirSync(path, { recursive: true });
    this.env = open({ path, mapSize: MAP_BYTES, maxDbs: DATABASES_MAX });
    this.snapshots = this.env.openDB<PersistedActor, string>({ name: 'snapshots' });
    this.outbox = this.env.openDB<OutboxEntry, string>({ name: 'outbox' });
    this.inbox = this.env.openDB<InboxEntry, string>({ name: 'inbox' });
    this.meta = this.env.openDB<unknown, string>({ name: 'meta' });
  }

  static open(path: string): PartyStore {
    return new PartyStore(path);
  }

  db<V>(name: string): Database<V, string> {
    return this.env.openDB<V, string>({ name });
  }

  /**
   * Runs `fn` in one write transaction and resolves once that transaction is
   * durable. Writes queued by `fn` commit together or not at all.
   */
  async commit<T>(fn: () => T): Promise<T> {
    const result = await this.env.transaction(fn);
    await this.env.flushed;
    return result;
  }

  /** A synchronous transaction, for compare-and-set records (the admin SAM's decision). Await flushed() after. */
  commitSync<T>(fn: () => T): T {
    return this.env.transactionSync(fn);
  }

  async flushed(): Promise<void> {
    await this.env.flushed;
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
