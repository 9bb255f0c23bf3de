/**
 * The admin SAM's records: temp keys per (migration, item), with the key
 * check values it needs later (the source's main key, set aside by the lock,
 * and the destination's main key, from the download receipt), and the
 * decision record of every migration (pending from S3; the commit or the
 * abort), written only by compare-and-set.
 *
 * A temp key's bytes live only until its item is settled (issue 16): the
 * admin SAM sets `key` to null in the turn that answers `admin.activated`
 * (S16, under `committed`) or `admin.restored` (rollback, under `aborted`).
 * The record stays, with its key check values, for the audit trail and for
 * the checks of a retried activation or restore, which need no temp key.
 */
import type { Database } from 'lmdb';
import type { PartyStore } from './party.store.ts';

export interface TempKeyRecord {
  mig: string;
  item: number;
  area: string;
  provider: string;
  recipient: string;
  /**
   * The temp key; null once its item is settled (see above). It opens upload
   * sessions on the locked source, so it is not kept a turn longer than a
   * lock, format or grant may still need it.
   */
  key: Uint8Array | null;
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
