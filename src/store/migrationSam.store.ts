/**
 * A migration SAM's store: per (migration, item) the item uploaded at S7 (data and
 * counter, plaintext only here and in chips), the grants it works under, and
 * the receipt it signed; and the migrations it has fenced. S17 clears an
 * item's record; an empty store is the end state of every migration.
 */
import type { Database } from 'lmdb';
import type { Grant, Receipt } from '../transport/messages.ts';
import type { PartyStore } from './party.store.ts';

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
}

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

  constructor(store: PartyStore) {
    this.items = store.db<HeldItem>('items');
    this.fenced = store.db<{ mig: string; reason: string }>('fenced');
    this.orders = store.db<SpentOrder>('orders');
  }

  static keyOf(mig: string, item: number): string {
    return `${mig}:${String(item).padStart(4, '0')}`;
  }

  /** Items still held (an empty list is the end state of every migration). */
  held(): HeldItem[] {
    return [...this.items.getRange()].map((e) => e.value);
  }
}
