/**
 * The admin SAM's records: temp keys per (migration, item), with the key
 * check values it needs later (the source's main key, set aside by the lock,
 * and the destination's main key, from the download receipt), and the
 * decision record of every migration, written only by compare-and-set.
 */
import type { Database } from 'lmdb';
import type { PartyStore } from './party.store.ts';

export interface TempKeyRecord {
  mig: string;
  item: number;
  area: string;
  provider: string;
  recipient: string;
  key: Uint8Array;
  /** Key check value of the source's main key, answered by the lock: a restore must give it back. */
  sourceMainKcv: string | null;
  /** Key check value of the destination's main key, from the verified receipt: activation must show it. */
  destinationMainKcv: string | null;
}

export interface DecisionRecord {
  mig: string;
  state: 'pending' | 'committed' | 'aborted';
  destination: string | null;
}

export class AdminSamRecords {
  readonly tempKeys: Database<TempKeyRecord, string>;
  readonly decisions: Database<DecisionRecord, string>;

  constructor(store: PartyStore) {
    this.tempKeys = store.db<TempKeyRecord>('temp-keys');
    this.decisions = store.db<DecisionRecord>('decisions');
  }

  static keyOf(mig: string, item: number): string {
    return `${mig}:${String(item).padStart(4, '0')}`;
  }
}
