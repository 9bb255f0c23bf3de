/**
 * A provider's ledger (issue 22, protocol.md §3 "Recovery of a lost phone"):
 * its normal SAM keeps, per (chip serial, area), the item's value as it last
 * saw it. Every spend and top-up passes through this SAM, and every item
 * reaches a chip through its migration SAM's download, which asks this SAM
 * for the destination's main key (S12): so the ledger sees every change.
 *
 *   l:<serial>:<area>   the value last seen on that chip (and a write sent
 *                       whose answer is not in yet: `pending`)
 *   in:<serial>:<area>  a download's value (S12), staged: it becomes the
 *                       ledger's entry only once the move is committed — the
 *                       migration SAM's clear after S16 says so (nsam.moved),
 *                       or a normal session opens on that area, which only a
 *                       committed, activated area allows
 *   rev:<serial>:<area> the area was revoked (the chip reported lost): this
 *                       SAM serves it no more, and the value it held is the
 *                       one re-issued on the user's new chip
 *   chip:<serial>       the chip was reported lost: none of its areas is
 *                       served, whether the ledger knew it or not
 *
 * Every write goes into the turn whose message it matches (persist, then
 * speak). The store is bounded by what the provider issued: an entry is made
 * only for a chip the provider's migration SAM downloaded to (under an
 * admin SAM grant and the provider's order or an upload), and a move
 * removes its source's entry.
 */
import type { Database } from 'lmdb';
import { keysOf, openFromPair, sealForPair, type Identity, type PairBox, type Rng } from '../crypto/index.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { TurnContext } from './runtime.ts';
import { decodeValue, encodeValue, type ValueItem } from './value.ts';

export interface LedgerEntry {
  serial: string;
  area: string;
  value: ValueItem;
  /** The area's counter after the write this entry records (0 after a download). */
  counter: number;
  /** A write sent to the chip whose answer is not in: the chip holds either value. */
  pending?: ValueItem;
  at: number;
}

interface Staged {
  mig: string;
  area: string;
  /** The chip the item moved from (none for an issuance). */
  from: string | null;
  value: ValueItem;
}

export interface Revocation {
  serial: string;
  area: string;
  /** The chip the item is re-issued on. */
  to: string;
  value: ValueItem;
  at: number;
}

/** A chip reported lost, at this provider. */
interface ChipRevocation {
  serial: string;
  to: string;
  at: number;
}

type Row = LedgerEntry | Staged | Revocation | ChipRevocation;

/**
 * What a recovery re-issues of an entry: with a write whose answer never
 * came, the one of the two values worth less to the holder (a spend that may
 * have happened is taken as done, a top-up that may not have, as not), so
 * the provider never re-issues value that may already have been spent.
 */
export function recoverable(e: LedgerEntry): ValueItem {
  const p = e.pending;
  if (!p) return e.value;
  if (p.kind === 'ticket' && e.value.kind === 'ticket') return p.used ? p : e.value;
  const worthOf = (v: ValueItem) => (v.kind === 'ticket' ? 0 : v.balance);
  return worthOf(p) <= worthOf(e.value) ? p : e.value;
}

export class Ledger {
  readonly db: Database<Row, string>;

  constructor(store: PartyStore) {
    this.db = store.db<Row>('ledger');
  }

  entry(serial: string, area: string): LedgerEntry | undefined {
    return this.db.get(`l:${serial}:${area}`) as LedgerEntry | undefined;
  }

  /** Whether this SAM serves (serial, area) no more: the area, or the whole chip, was revoked. */
  revoked(serial: string, area: string): boolean {
    return this.db.get(`rev:${serial}:${area}`) !== undefined || this.db.get(`chip:${serial}`) !== undefined;
  }

  /** Every entry of a chip (its areas' values as last seen). */
  entriesOf(serial: string): LedgerEntry[] {
    return [...this.db.getRange({ start: `l:${serial}:`, end: `l:${serial};` })].map((r) => r.value as LedgerEntry);
  }

  /** Every revocation of a chip. */
  revocationsOf(serial: string): Revocation[] {
    return [...this.db.getRange({ start: `rev:${serial}:`, end: `rev:${serial};` })].map((r) => r.value as Revocation);
  }

  /** S12: a download to (serial, area) will place this value; staged until its move is committed. */
  stage(turn: TurnContext, serial: string, area: string, s: Staged): void {
    turn.write(() => this.db.put(`in:${serial}:${area}`, s));
  }

  /**
   * The move into (serial, area) is committed: its staged value becomes the
   * entry, and the source's entry goes. `mig` names the migration when it is
   * known (the clear after S16); a normal session on the area proves the
   * latest one committed, whichever it was.
   */
  commitMove(turn: TurnContext, serial: string, area: string, mig?: string): void {
    const s = this.db.get(`in:${serial}:${area}`) as Staged | undefined;
    if (!s || (mig !== undefined && s.mig !== mig)) return;
    const entry: LedgerEntry = { serial, area, value: s.value, counter: 0, at: turn.now() };
    turn.write(() => {
      this.db.put(`l:${serial}:${area}`, entry);
      if (s.from) this.db.remove(`l:${s.from}:${area}`);
      this.db.remove(`in:${serial}:${area}`);
    });
  }

  /** A rolled-back move: its staged value never reached a spendable area. */
  dropStaged(turn: TurnContext, serial: string, area: string, mig: string): void {
    const s = this.db.get(`in:${serial}:${area}`) as Staged | undefined;
    if (s?.mig === mig) turn.write(() => this.db.remove(`in:${serial}:${area}`));
  }

  /** Whether the chip was reported lost here (none of its areas is served). */
  chipRevoked(serial: string): boolean {
    return this.db.get(`chip:${serial}`) !== undefined;
  }

  /** A write is sent to the chip (its answer may be lost): the entry notes the value it may now hold. */
  writeSent(turn: TurnContext, serial: string, area: string, value: ValueItem, next: ValueItem, counter: number): void {
    if (this.chipRevoked(serial)) return;
    turn.write(() => this.db.put(`l:${serial}:${area}`, { serial, area, value, counter, pending: next, at: turn.now() }));
  }

  /** A normal session's answer: the value the chip holds now (in the turn that sends the receipt). */
  seen(turn: TurnContext, serial: string, area: string, value: ValueItem, counter: number): void {
    if (this.chipRevoked(serial)) return; // a write answered after the report: its value was re-issued as it stood then
    const entry: LedgerEntry = { serial, area, value, counter, at: turn.now() };
    turn.write(() => this.db.put(`l:${serial}:${area}`, entry));
  }

  /**
   * Revokes every area the ledger holds for a lost chip, in this turn, and
   * answers what each held. Idempotent: a repeat answers the same values; a
   * chip is revoked for one new chip only.
   */
  revoke(turn: TurnContext, lost: string, to: string): Revocation[] {
    const earlier = this.db.get(`chip:${lost}`) as ChipRevocation | undefined;
    if (earlier && earlier.to !== to)
      throw new ProtocolError('RECOVERY_REFUSED', `chip ${lost} was reported lost already, its items re-issued on ${earlier.to}`);
    const done = this.revocationsOf(lost);
    // An area whose item is moving out (downloaded, not yet committed) is not re-issued: the move carries it.
    const moving = new Set<string>();
    for (const { value } of this.db.getRange({ start: 'in:', end: 'in;' })) if ((value as Staged).from === lost) moving.add((value as Staged).area);
    const fresh: Revocation[] = this.entriesOf(lost)
      .filter((e) => !moving.has(e.area))
      .map((e) => ({ serial: lost, area: e.area, to, value: recoverable(e), at: turn.now() }));
    turn.write(() => {
      const chip: ChipRevocation = { serial: lost, to, at: turn.now() };
      this.db.put(`chip:${lost}`, chip);
      for (const r of fresh) {
        this.db.put(`rev:${lost}:${r.area}`, r);
        this.db.remove(`l:${lost}:${r.area}`);
      }
    });
    return [...done, ...fresh];
  }
}

/** The label binding a value item sealed between a provider's two SAMs to the ledger (S12 and recovery). */
export const LEDGER_SEAL_INFO = 'valmove/v1/ledger-item';

const aadOf = (serial: string, area: string) => new TextEncoder().encode(`ledger/${serial}/${area}`);

/** What the ledger's messages read of the normal SAM. */
export interface LedgerHost {
  identity: Identity;
  migrationSamBoxPublic: Uint8Array;
  migrationSamPeer: string;
  rng: Rng;
}

/** Seals a value item for the provider's other SAM, bound to a chip and area. */
export function sealItem(
  host: { identity: Identity; rng: Rng },
  peerBoxPublic: Uint8Array | readonly Uint8Array[],
  serial: string,
  area: string,
  v: ValueItem,
): PairBox {
  // A peer in a rotation window (deploying.md) is named by its keys, current first: the box is sealed to that one.
  const to = keysOf(peerBoxPublic)[0]!;
  return sealForPair(host.identity, to, encodeValue(v), LEDGER_SEAL_INFO, aadOf(serial, area), host.rng);
}

/** Opens a value item the provider's other SAM sealed for this chip and area. */
export function openItem(identity: Identity, peerBoxPublic: Uint8Array | readonly Uint8Array[], serial: string, area: string, box: PairBox): ValueItem {
  return decodeValue(openFromPair(identity, peerBoxPublic, box, LEDGER_SEAL_INFO, aadOf(serial, area)));
}

/**
 * The ledger's part of the normal SAM's inbound messages, all from its own
 * migration SAM: the staged value of a download (inside nsam.main-key), the
 * move's outcome (nsam.moved), and a lost chip's revocation (nsam.revoke),
 * answered with the values to re-issue, sealed for the migration SAM.
 */
export function ledgerMessage(ledger: Ledger, host: LedgerHost, env: AnyEnvelope, peer: string, turn: TurnContext): void {
  if (peer !== host.migrationSamPeer) throw new ProtocolError('NOT_TRUSTED', `only ${host.migrationSamPeer} may tell this SAM's ledger of ${env.type}`);
  switch (env.type) {
    case 'nsam.main-key': {
      const { serial, area, mig, from, item } = env.body;
      if (ledger.revoked(serial, area)) throw new ProtocolError('AREA_REVOKED', `chip ${serial} was reported lost: area ${area} is revoked`);
      // An item uploaded from a chip that was reported lost, and re-issued from the ledger since: never placed again.
      if (from && ledger.db.get(`rev:${from}:${area}`)) throw new ProtocolError('AREA_REVOKED', `area ${area} of ${from} was re-issued after its report`);
      if (mig === undefined || item === undefined) return;
      const value = openItem(host.identity, host.migrationSamBoxPublic, serial, area, item);
      ledger.stage(turn, serial, area, { mig, from: from ?? null, area, value });
      return;
    }
    case 'nsam.moved': {
      const { serial, area, mig, committed } = env.body;
      if (committed) ledger.commitMove(turn, serial, area, mig);
      else ledger.dropStaged(turn, serial, area, mig);
      turn.reply(env, 'nsam.noted', {});
      return;
    }
    case 'nsam.revoke': {
      const { lost, to } = env.body;
      const items = ledger.revoke(turn, lost, to).map((r) => ({ area: r.area, item: sealItem(host, host.migrationSamBoxPublic, lost, r.area, r.value) }));
      turn.reply(env, 'nsam.revoked', { items });
      return;
    }
    default:
      throw new ProtocolError('UNEXPECTED', `the ledger does not take ${env.type}`);
  }
}
