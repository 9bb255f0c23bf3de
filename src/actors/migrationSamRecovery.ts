/**
 * A lost phone's recovery at a provider's migration SAM (issue 22,
 * protocol.md §3 "Recovery of a lost phone"). The server, for a user who
 * reported the phone lost, asks (msam.recover); this SAM records the lost
 * chip first (from then on it uploads nothing from it), then asks its own
 * normal SAM to revoke the chip's areas (nsam.revoke). The normal SAM
 * answers each area's value from its ledger, sealed to us; for each we sign
 * an issue order for the user's new chip, as the provider would for an
 * issuance: the new chip receives them through the issuance's steps (S9–S17,
 * the decision record, receipts, activation). Revoke, then place: an order
 * exists only for an area the normal SAM no longer serves.
 *
 * An order is used once. A repeated report answers the same orders, unless
 * one was used by an issuance that was aborted (and fenced here): then a new
 * one for the same value replaces it.
 */
import type { Database } from 'lmdb';
import { createIssueOrder, encodeIssueOrder, signRevocation, type GrantBinding, type Identity, type Rng } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { HeldItem, MigrationSamRecords } from '../store/migrationSam.store.ts';
import type { BodyOf } from '../transport/messages.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { AnyEnvelope, Envelope } from '../transport/envelope.ts';
import { openItem, sealItem } from './normalSamLedger.ts';
import type { TurnContext } from './runtime.ts';
import { decodeValue, encodeValue } from './value.ts';

/** How long a recovery's issue order stays usable (the user re-installs within this; a report again mints new ones after). */
export const RECOVERY_ORDER_TTL_MS = 30 * 24 * 3_600_000;

interface OrderRef {
  id: string;
  token: string;
  expiresAt: number;
}

export interface RecoveryRecord {
  lost: string;
  to: string;
  /** The server link and request the answer goes to. */
  server: string;
  request: string;
  /** The order of each area, for the new chip. */
  orders: Record<string, OrderRef>;
}

/** What the recovery reads of the migration SAM. */
export interface RecoveryHost {
  identity: Identity;
  provider: string;
  records: MigrationSamRecords;
  normalSamPeer: string;
  normalSamBoxPublic: Uint8Array | readonly Uint8Array[];
  rng: Rng;
}

export class MigrationSamRecoveries {
  /** lost serial -> its recovery; the lost chips this SAM uploads nothing from. */
  readonly db: Database<RecoveryRecord, string>;

  constructor(
    store: PartyStore,
    private readonly host: RecoveryHost,
  ) {
    this.db = store.db<RecoveryRecord>('recoveries');
  }

  /** A chip reported lost: no upload from it (its found-again phone would carry out value the ledger re-issued). */
  refuseUploadFrom(serial: string): void {
    if (this.db.get(serial)) throw new ProtocolError('AREA_REVOKED', `chip ${serial} was reported lost: this provider moves nothing out of it`);
  }

  /** msam.recover: recorded before the normal SAM is asked (persist, then speak), so no upload slips in between. */
  requested(turn: TurnContext, env: Envelope<'msam.recover'>, server: string): void {
    const { lost, to } = env.body;
    if (lost === to) throw new ProtocolError('RECOVERY_REFUSED', 'the lost chip and the new chip are the same');
    const rec = this.db.get(lost);
    if (rec && rec.to !== to) throw new ProtocolError('RECOVERY_REFUSED', `chip ${lost} was reported lost already, for ${rec.to}`);
    const next: RecoveryRecord = { lost, to, server, request: env.id, orders: rec?.orders ?? {} };
    turn.write(() => this.db.put(lost, next));
    turn.send(this.host.normalSamPeer, 'nsam.revoke', { lost, to });
  }

  /** nsam.revoked: the revoked areas' values, each placed in an order for the new chip; the server gets the orders. */
  revoked(turn: TurnContext, env: Envelope<'nsam.revoked'>, req: AnyEnvelope): void {
    if (req.type !== 'nsam.revoke') throw new ProtocolError('UNEXPECTED', 'nsam.revoked answers no revocation of ours');
    const rec = this.db.get(req.body.lost);
    if (!rec) throw new ProtocolError('NOT_FOUND', `no recovery of ${req.body.lost} here`);
    const now = turn.now();
    const orders: Record<string, OrderRef> = {};
    for (const { area, item } of env.body.items) {
      const prev = rec.orders[area];
      if (prev && this.usable(prev)) {
        orders[area] = prev;
        continue;
      }
      const value = openItem(this.host.identity, this.host.normalSamBoxPublic, rec.lost, area, item);
      const expiresAt = now + RECOVERY_ORDER_TTL_MS;
      const body = { provider: this.host.provider, serial: rec.to, area, expiresAt, item: encodeValue(value) };
      const order = createIssueOrder(body, this.host.identity, this.host.rng);
      orders[area] = { id: order.id, token: encodeIssueOrder(order), expiresAt };
    }
    turn.write(() => this.db.put(rec.lost, { ...rec, orders }));
    const areas = Object.keys(orders);
    // Each revoked area's revocation: the one authority under which the admin SAM wipes it on the lost chip, if it comes back.
    const revocations = areas.map((area) => signRevocation({ provider: this.host.provider, serial: rec.lost, area, to: rec.to }, this.host.identity));
    turn.send(rec.server, 'msam.recovered', { areas, orders: areas.map((a) => orders[a]!.token), revocations }, { corr: rec.request });
  }

  /** The normal SAM refused (the chip was revoked for another new chip): the server hears why. */
  refused(turn: TurnContext, env: Envelope<'error'>, req: AnyEnvelope): void {
    if (req.type !== 'nsam.revoke') throw new ProtocolError('UNEXPECTED', 'this error answers no revocation of ours');
    const rec = this.db.get(req.body.lost);
    if (rec) turn.send(rec.server, 'error', env.body, { corr: rec.request });
  }

  /**
   * An order stays the area's order unless it is known never to place its
   * item: used by an issuance that was aborted (fenced here). An unused one
   * past its expiry is not replaced: once a used order's record is pruned
   * (at its expiry) nothing tells it from one never used.
   */
  private usable(o: OrderRef): boolean {
    const spent = this.host.records.orders.get(o.id);
    return !spent || !this.host.records.fenced.get(spent.mig);
  }
}

/** S12: the main-key request carries the item's value for the ledger, staged there until the move is committed. */
export function ledgerNote(host: RecoveryHost, held: HeldItem, grant: GrantBinding): BodyOf<'nsam.main-key'> {
  const base = { serial: grant.serial, area: grant.area, mig: held.mig };
  if (!held.data) return { serial: grant.serial, area: grant.area };
  const item = sealItem(host, host.normalSamBoxPublic, grant.serial, grant.area, decodeValue(held.data));
  return { ...base, ...(held.uploadGrant ? { from: held.uploadGrant.serial } : {}), item };
}

/** S17 (or a rollback's clear): the ledger hears whether the move into the destination was committed. */
export function tellLedger(host: RecoveryHost, turn: TurnContext, held: HeldItem | undefined): void {
  if (!held?.downloadGrant) return;
  const committed = held.receipt !== null && !host.records.fenced.get(held.mig);
  const body = { serial: held.downloadGrant.serial, area: held.area, mig: held.mig, committed };
  turn.send(host.normalSamPeer, 'nsam.moved', body, { mig: held.mig, item: held.item, step: 'S17' });
}
