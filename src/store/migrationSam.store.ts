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

  constructor(store: PartyStore) {
    this.items = store.db<HeldItem>('items');
    this.fenced = store.db<{ mig: string; reason: string }>('fenced');
    this.orders = store.db<SpentOrder>('orders');
    this.audit = store.db<Statement>('audit');
  }

  static keyOf(mig: string, item: number): string {
    return `${mig}:${String(item).padStart(4, '0')}`;
  }

  /** Keeps a statement in the audit record (one per item and direction: a repeat replaces it), dropping the oldest past the bound. Inside a write. */
  keepAudit(s: Statement): void {
    this.audit.put(`${MigrationSamRecords.keyOf(s.mig, s.item)}:${s.direction}`, s);
    let count = 0;
    let oldest: { key: string; at: number } | undefined;
    for (const { key, value } of this.audit.getRange()) {
      count++;
      if (!oldest || value.at < oldest.at) oldest = { key, at: value.at };
    }
    if (count > AUDIT_RECORDS_MAX && oldest) this.audit.remove(oldest.key);
  }

  /** The audit record, oldest first. */
  auditRecords(): Statement[] {
    return [...this.audit.getRange()].map((e) => e.value).sort((a, b) => a.at - b.at);
  }

  /** Items still held (an empty list is the end state of every migration). */
  held(): HeldItem[] {
    return [...this.items.getRange()].map((e) => e.value);
  }
}
