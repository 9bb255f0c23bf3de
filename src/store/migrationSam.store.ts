/**
 * A migration SAM's store: per (migration, item) the item uploaded at S7 (data and
 * counter, plaintext only here and in chips), the grants it works under, and
 * the receipt it signed; and the migrations it has fenced. S17 clears an
 * item's record; an empty store is the end state of every migration.
 */
import type { Database } from 'lmdb';
import type { Grant, Receipt } from '../transport/messages.ts';
import type { PartyStore } from './party.store.ts';
import type { Statement } from '../crypto/statement.ts';

export interface HeldItem {
  mig: string;
  item: number;
  area: string;
  provider: string;
  /** The admin SAM's upload grant; null for an issuance's item, which an issue order brought. */
  uploadGrant: Grant | null;
  /** The issue order's id, for an issuance's item. */
  order?: string;
  downloadGrant: Grant | null;
  data: Uint8Array | null;
  counter: number;
  receipt: Receipt | null;
  /** The phone's X25519 key this item's statement (the user's receipt) is sealed to, as the server named it. */
  receiptTo?: string;
}

/** Audit records a migration SAM keeps at most: the oldest goes first. */
export const AUDIT_RECORDS_MAX = 1000;

export interface SpentOrder {
  mig: string;
  item: number;
  expiresAt: number;
}

export class MigrationSamRecords {
  readonly items: Database<HeldItem, string>;
  readonly fenced: Database<{ mig: string; reason: string }, string>;
  /** Issue orders used, by order id: each places one item once. Kept until the order expires (then it is refused anyway). */
  readonly orders: Database<SpentOrder, string>;
  /** The provider's audit record: each statement this SAM signed, what moved out and in (bounded, AUDIT_RECORDS_MAX). */
  readonly audit: Database<Statement, string>;
  /** The audit record's keys by time (`<at, 16 digits>|<key>`): the oldest is the first key, no record is read to prune. */
  private readonly auditByTime: Database<string, string>;

  constructor(store: PartyStore) {
    this.items = store.db<HeldItem>('items');
    this.fenced = store.db<{ mig: string; reason: string }>('fenced');
    this.orders = store.db<SpentOrder>('orders');
    this.audit = store.db<Statement>('audit');
    this.auditByTime = store.db<string>('audit-by-time');
  }

  private static timeKey(s: Statement, key: string): string {
    return `${String(s.at).padStart(16, '0')}|${key}`;
  }

  static keyOf(mig: string, item: number): string {
    return `${mig}:${String(item).padStart(4, '0')}`;
  }

  /** Keeps a statement in the audit record (one per item and direction: a repeat replaces it), dropping the oldest past the bound. Inside a write. */
  keepAudit(s: Statement): void {
    const key = `${MigrationSamRecords.keyOf(s.mig, s.item)}:${s.direction}`;
    const before = this.audit.get(key);
    if (before) this.auditByTime.remove(MigrationSamRecords.timeKey(before, key));
    this.audit.put(key, s);
    this.auditByTime.put(MigrationSamRecords.timeKey(s, key), key);
    if (this.audit.getCount() <= AUDIT_RECORDS_MAX) return;
    for (const { key: at, value: oldest } of this.auditByTime.getRange({ limit: 1 })) {
      this.auditByTime.remove(at);
      this.audit.remove(oldest);
    }
  }

  /** The audit record, oldest first. */
  auditRecords(): Statement[] {
    return [...this.auditByTime.getRange()].flatMap((e) => this.audit.get(e.value) ?? []);
  }

  /** Items still held (an empty list is the end state of every migration). */
  held(): HeldItem[] {
    return [...this.items.getRange()].map((e) => e.value);
  }
}
