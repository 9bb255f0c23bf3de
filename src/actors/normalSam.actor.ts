/**
 * A provider's normal SAM (seed 11): the main-key logic. Main keys are
 * diversified per chip and area, K_main = KDF(providerMaster, serial, area),
 * so this SAM derives them on demand and stores none.
 *
 * It serves normal use for readers the provider enrolled (a phone's
 * terminal, a shop's reader), and, for its own migration SAM only, seals the
 * destination's main key for a download.
 *
 * Spending and creating value are told apart (protocol.md §1): pay, use and
 * balance need a reader enrolled with the right `spend`; a top-up creates
 * value, so it needs the provider's own authority as well — a reader
 * enrolled with the right `charge`, or a voucher this SAM signed, redeemed
 * once, for exactly the chip, area and amount it names.
 */
import {
  CryptoError,
  decodeVoucher,
  deriveMainKey,
  fromB64,
  ownSignKeys,
  sealForPair,
  toB64,
  verifyVoucher,
  type Identity,
  type Secret,
  type TrustVerdict,
  type VoucherBody,
} from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { Database } from 'lmdb';
import { normalSamMachine, NORMAL_SAM_MACHINE_VERSION, type NormalOp, type NormalSamContext, type NormalSamIntent } from '../machines/normalSam.machine.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { Link } from '../transport/link.ts';
import { decodeChipFrame } from '../transport/chip.frames.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { applyNormalOp, decodeValue, encodeValue, type NormalReceipt, type ValueItem } from './value.ts';
import { Ledger, ledgerMessage } from './normalSamLedger.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';
import { SamSessions } from './samSession.ts';

const READER = 'reader:';

/** The label binding a sealed main key to its purpose. */
export const MAIN_KEY_SEAL_INFO = 'valmove/v1/main-key';
/** Reader sessions one reader link may have open at once (a reader serves one card at a time; a few for retries). */
export const READER_SESSIONS_PER_LINK_MAX = 4;

/** What an enrolled reader may do: `spend` (pay, use, read a balance), `charge` (top up without a voucher). */
export const READER_RIGHTS = ['spend', 'charge'] as const;
export type ReaderRight = (typeof READER_RIGHTS)[number];

/** A reader the provider enrolled: the name its key may use, and its rights. */
export interface EnrolledReader {
  name: string;
  rights: ReaderRight[];
}

/** Used vouchers removed per redemption once they expire (their record is only needed until then). */
export const VOUCHER_RECORDS_PRUNED_PER_TURN_MAX = 32;

export interface NormalSamOptions {
  provider: string;
  providerMaster: Secret;
  identity: Identity;
  /** The box key of this provider's own migration SAM (the only party that may ask for a main key). */
  migrationSamBoxPublic: Uint8Array;
  /**
   * Readers the provider enrolled, by Ed25519 key (base64url): from the
   * provider's config (keygen writes the deployment's phones). More are
   * enrolled in the SAM's store (`valmove provider enroll`).
   */
  readers?: Record<string, EnrolledReader>;
}

interface ReaderWork {
  peer: string;
  amount: number | undefined;
  /** The voucher this top-up redeems, checked at begin; its chip is checked once the chip proved its serial. */
  voucher?: VoucherBody;
  value?: ValueItem;
  /** The chip's serial, as its main-key proof showed (the ledger's key). */
  serial?: string;
  counter?: number;
  next?: ValueItem | null;
  receipt?: NormalReceipt;
}

interface VoucherRecord {
  id: string;
  serial: string;
  area: string;
  amount: number;
  expiresAt: number;
  usedAt: number;
}

const pad = (n: number) => String(n).padStart(16, '0');

export class NormalSamRuntime extends PartyRuntime {
  protected override readonly resendsFrames = true; // it drives chip sessions: each one's last frame is sent again until answered
  // discardWhenDone: one session per payment; once answered (the reply is in the inbox) nothing of it is kept.
  protected readonly kinds: Record<string, MachineKind> = {
    normalSam: { machine: normalSamMachine, version: NORMAL_SAM_MACHINE_VERSION, discardWhenDone: true },
  };
  private readonly sessions: SamSessions;
  private readonly work = new Map<string, ReaderWork>();
  private readonly opts: NormalSamOptions;
  /** Readers enrolled in this SAM's store (key -> reader); the config's are in opts.readers. */
  private readonly enrolled: Database<EnrolledReader, string>;
  /** Used vouchers: `id:<id>` -> record, and `exp:<expiresAt>:<id>` to find the expired ones in order. */
  private readonly vouchers: Database<VoucherRecord | string, string>;
  /** Each item's value as last seen here, per chip and area, and the revoked areas (normalSamLedger.ts). */
  readonly ledger: Ledger;

  constructor(deps: RuntimeDeps, opts: NormalSamOptions) {
    super(deps);
    this.opts = opts;
    this.sessions = new SamSessions(deps.rng);
    this.enrolled = NormalSamRuntime.readersDb(deps.store);
    this.vouchers = deps.store.db<VoucherRecord | string>('vouchers');
    this.ledger = new Ledger(deps.store);
  }

  /** The store's table of enrolled readers (the operator's `valmove provider enroll` writes it). */
  static readersDb(store: PartyStore): Database<EnrolledReader, string> {
    return store.db<EnrolledReader>('readers');
  }

  get migrationSamPeer(): string {
    return `migration-sam/${this.opts.provider}`;
  }

  get provider(): string {
    return this.opts.provider;
  }

  /** The reader enrolled under this key, if any. */
  readerOf(key: string): EnrolledReader | undefined {
    return this.opts.readers?.[key] ?? this.enrolled.get(key);
  }

  /**
   * Whether a connection may act as a reader here (at its channel hello,
   * before any public-key work): it must present a key the provider
   * enrolled, under the name it was enrolled with.
   */
  admitReader(name: string, key: string | undefined): TrustVerdict {
    if (key === undefined)
      return { code: 'UNTRUSTED_PEER', message: `a reader of ${this.opts.provider} proves a key the provider enrolled; this hello carries none` };
    const reader = this.readerOf(key);
    if (!reader) return { code: 'UNTRUSTED_PEER', message: `${name.slice(0, 64)} is not a reader enrolled by ${this.opts.provider}` };
    if (reader.name !== name)
      return { code: 'UNTRUSTED_PEER', message: `this key is enrolled by ${this.opts.provider} as ${reader.name}, not ${name.slice(0, 64)}` };
    return true;
  }

  /** Takes a reader's connection once its channel is up (the proven key is checked again). */
  attachReader(name: string, link: Link & { peerId?: string }): boolean {
    return this.attachAdmitted(name, link, (n, k) => this.admitReader(n, k));
  }

  /** The rights of the reader on this link: from the key its channel proved. */
  private rightsOf(peer: string): readonly ReaderRight[] {
    const key = this.peerKeyOf(peer);
    const reader = key === undefined ? undefined : this.readerOf(key);
    return reader && reader.name === peer ? reader.rights : [];
  }

  /**
   * May this reader run this operation? Spending needs `spend`; a top-up
   * creates value and needs `charge` or a valid voucher. Returns the voucher
   * to redeem, if one is used. Throws before any change.
   */
  private authorise(peer: string, op: NormalOp, area: string, amount: number | undefined, token: string | undefined): VoucherBody | undefined {
    const rights = this.rightsOf(peer);
    if (op !== 'topup') {
      if (!rights.includes('spend')) throw new ProtocolError('NOT_AUTHORISED', `${peer} is not enrolled by ${this.opts.provider} to ${op}`);
      if (token !== undefined) throw new ProtocolError('BAD_BODY', `normal.begin body is invalid: body.voucher: a voucher is for a top-up, not for ${op}`);
      return undefined;
    }
    if (token === undefined) {
      if (rights.includes('charge')) return undefined;
      throw new ProtocolError(
        'NOT_AUTHORISED',
        `a top-up creates value: it needs a charging reader enrolled by ${this.opts.provider} or a voucher ${this.opts.provider} signed`,
      );
    }
    if (!rights.includes('spend') && !rights.includes('charge')) throw new ProtocolError('NOT_AUTHORISED', `${peer} is not enrolled by ${this.opts.provider}`);
    let v: VoucherBody;
    try {
      v = verifyVoucher(decodeVoucher(token), ownSignKeys(this.opts.identity));
    } catch (e) {
      throw new ProtocolError('VOUCHER_REFUSED', e instanceof CryptoError ? e.message : 'the voucher does not verify');
    }
    const refuse = (why: string) => new ProtocolError('VOUCHER_REFUSED', why);
    if (v.provider !== this.opts.provider) throw refuse(`the voucher is for ${v.provider}, not ${this.opts.provider}`);
    if (v.area !== area) throw refuse(`the voucher is for area ${v.area}, not ${area}`);
    if (amount !== undefined && amount !== v.amount) throw refuse(`the voucher is for ${v.amount}, not ${amount}`);
    if (v.expiresAt <= this.clock.now()) throw refuse('the voucher has expired');
    if (this.vouchers.get(`id:${v.id}`)) throw refuse('the voucher was already redeemed');
    for (const w of this.work.values()) if (w.voucher?.id === v.id) throw refuse('the voucher is being redeemed by another session');
    return v;
  }

  /**
   * Marks a voucher used in the turn that sends the write to the chip
   * (persist, then speak): once the chip may have been credited, the voucher
   * is spent, even if the answer is lost. A voucher is never redeemed twice;
   * a lost answer costs the holder the voucher, not the provider the value
   * twice (the provider's ledger settles such a case).
   */
  private spendVoucher(turn: TurnContext, v: VoucherBody): void {
    const now = this.clock.now();
    const db = this.vouchers;
    const expired: string[] = [];
    for (const { key, value } of db.getRange({ start: 'exp:', end: `exp:${pad(now)}` })) {
      if (expired.length >= VOUCHER_RECORDS_PRUNED_PER_TURN_MAX) break;
      expired.push(key, `id:${value as string}`);
    }
    turn.write(() => {
      for (const k of expired) db.remove(k);
      db.put(`id:${v.id}`, { id: v.id, serial: v.serial, area: v.area, amount: v.amount, expiresAt: v.expiresAt, usedAt: now });
      db.put(`exp:${pad(v.expiresAt)}:${v.id}`, v.id);
    });
  }

  /** After a restart, sessions in progress are lost (their keys lived in RAM): fail them so their steps are retried. */
  override async start(): Promise<void> {
    await super.start();
    await this.runLocal((turn) => {
      for (const key of this.actorKeys('normalSam')) turn.tryDispatch(key, { type: 'SESSION_LOST' });
    });
  }

  // ---- issue 16: what a reader link holds is bounded, and goes with the link ---------------------

  private readerSessions(peer: string): number {
    let n = 0;
    for (const w of this.work.values()) if (w.peer === peer) n++;
    return n;
  }

  protected override onLinkClosed(peer: string, reason: string): void {
    super.onLinkClosed(peer, reason);
    const lost = [...this.work].filter(([, w]) => w.peer === peer).map(([session]) => session);
    if (lost.length === 0) return;
    for (const session of lost) {
      this.work.delete(session);
      this.sessions.end(session);
    }
    // Their sessions fail; each answer goes into the inbox, for the reader's repeat on a new link.
    void this.runLocal((turn) => {
      for (const session of lost) turn.tryDispatch(READER + session, { type: 'SESSION_LOST' });
    }).catch(() => {});
  }

  protected override onReloaded(turn: TurnContext): void {
    for (const key of this.actorKeys('normalSam')) turn.tryDispatch(key, { type: 'SESSION_LOST' });
  }

  protected onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    switch (env.type) {
      case 'nsam.moved':
      case 'nsam.revoke':
        return ledgerMessage(this.ledger, this.ledgerHost, env, peer, turn);
      case 'nsam.main-key': {
        if (peer !== this.migrationSamPeer) throw new ProtocolError('NOT_TRUSTED', `only ${this.migrationSamPeer} may ask this SAM for a main key`);
        ledgerMessage(this.ledger, this.ledgerHost, env, peer, turn); // the download's value, staged (or AREA_REVOKED)
        const key = deriveMainKey(this.opts.providerMaster, env.body.serial, env.body.area);
        const aad = new TextEncoder().encode(`${env.body.serial}/${env.body.area}`);
        // Under the key this SAM shares with its own migration SAM (pairBox.ts): no public-key operation per main key.
        const sealed = sealForPair(this.opts.identity, this.opts.migrationSamBoxPublic, key.reveal(), MAIN_KEY_SEAL_INFO, aad, this.rng);
        turn.reply(env, 'nsam.main-key.sealed', sealed);
        return;
      }
      case 'normal.begin': {
        if (!peer.startsWith('terminal/')) throw new ProtocolError('BAD_SENDER', 'normal use comes from a terminal acting as a reader');
        const key = READER + env.body.session;
        if (this.actorOf(key)) throw new ProtocolError('UNEXPECTED', `reader session ${env.body.session} was already used`);
        if (this.readerSessions(peer) >= READER_SESSIONS_PER_LINK_MAX) {
          throw new ProtocolError('BUSY', `${peer} has ${READER_SESSIONS_PER_LINK_MAX} reader sessions open, the most one reader may; finish one first`);
        }
        const voucher = this.authorise(peer, env.body.op, env.body.area, env.body.amount, env.body.voucher);
        this.work.set(env.body.session, { peer, amount: voucher?.amount ?? env.body.amount, ...(voucher ? { voucher } : {}) });
        turn.spawn(key, 'normalSam', {
          session: env.body.session,
          op: env.body.op,
          area: env.body.area,
          request: env.id,
          deadline: this.clock.now() + this.timing.sessionMs,
        });
        return;
      }
      case 'frame':
        return this.sessions.take(env.body.session, env.body.data, () => this.onFrame(turn, env.body.session, env.body.data, peer));
      default:
        throw new ProtocolError('UNEXPECTED', `a normal SAM does not accept ${env.type}`);
    }
  }

  private onFrame(turn: TurnContext, session: string, data: string, peer: string): void {
    const key = READER + session;
    const actor = this.actorOf(key);
    const w = this.work.get(session);
    if (actor?.getSnapshot().status !== 'active' || w?.peer !== peer || !this.sessions.has(session)) {
      throw new ProtocolError('NOT_FOUND', `no open reader session ${session.slice(0, 64)}`);
    }
    if (this.sessions.repeat(session, data)) return; // the chip's answer again, to a frame we sent again (resends.ts): taken once
    const ctx = actor.getSnapshot().context as NormalSamContext;
    const frame = decodeChipFrame(fromB64(data));
    if (actor.getSnapshot().matches('authenticating')) {
      turn.dispatch(
        key,
        this.sessions.answerEvent(session, frame, (serial) => deriveMainKey(this.opts.providerMaster, serial, ctx.area)),
      );
      return;
    }
    const r = this.sessions.reply(session, frame);
    if (r.kind === 'refused') return turn.dispatch(key, { type: 'CHIP_REFUSED', code: r.code, message: r.message });
    const reply = r.reply;
    if (actor.getSnapshot().matches('reading')) {
      if (!reply.ok || reply.data === undefined || reply.counter === undefined) {
        const code = reply.ok ? 'BAD_BODY' : reply.code;
        const message = reply.ok ? 'the chip returned no value' : reply.message;
        return turn.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code, message });
      }
      let value: ValueItem;
      try {
        value = decodeValue(fromB64(reply.data));
      } catch (e) {
        return turn.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code: 'BAD_BODY', message: (e as Error).message });
      }
      const serial = (w.serial = this.sessions.serialOf(session) ?? '');
      if (this.ledger.revoked(serial, ctx.area)) {
        // The chip was reported lost (issue 22): its items live on the user's new chip; this one is served no more.
        const message = `chip ${serial} was reported lost: area ${ctx.area} is revoked`;
        return turn.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code: 'AREA_REVOKED', message });
      }
      this.ledger.commitMove(turn, serial, ctx.area); // a session opened: the area is active, so the move into it committed
      if (w.voucher && (w.voucher.serial !== serial || w.voucher.area !== ctx.area)) {
        // The chip proved its serial with its main key: a voucher credits only the chip it names.
        return turn.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code: 'VOUCHER_REFUSED', message: 'the voucher is for another chip' });
      }
      const outcome = applyNormalOp(value, ctx.op, w.amount);
      if ('error' in outcome) {
        return turn.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code: outcome.error.code, message: outcome.error.message });
      }
      Object.assign(w, { value, counter: reply.counter, next: outcome.next, receipt: outcome.receipt });
      return turn.dispatch(key, { type: 'VALUE_READ', ok: true, next: outcome.next ? 'write' : 'done' });
    }
    if (reply.ok) return turn.dispatch(key, { type: 'VALUE_WRITTEN', ok: true });
    return turn.dispatch(key, { type: 'VALUE_WRITTEN', ok: false, code: reply.code, message: reply.message });
  }

  private get ledgerHost() {
    return { identity: this.opts.identity, migrationSamBoxPublic: this.opts.migrationSamBoxPublic, migrationSamPeer: this.migrationSamPeer, rng: this.rng };
  }

  protected onIntent(key: string, intent: NormalSamIntent, turn: TurnContext): void {
    const ctx = this.actorOf(key)!.getSnapshot().context as NormalSamContext;
    const w = this.work.get(ctx.session);
    const peer = w?.peer;
    if (!peer) {
      // Its work is gone (a restart, or the reader's link closed): the failure still answers the request, into the inbox.
      if (intent.type === 'answerFailed')
        turn.send(turn.peerOfRequest(intent.request), 'error', { code: intent.code, message: intent.message }, { corr: intent.request });
      return;
    }
    const frame = (bytes: Uint8Array) => turn.send(peer, 'frame', { session: ctx.session, data: toB64(bytes) });
    switch (intent.type) {
      case 'beginAuth':
        frame(this.sessions.begin({ session: ctx.session, area: ctx.area, mig: '-', purpose: 'normal' }));
        return;
      case 'sendRead':
        frame(this.sessions.command(ctx.session, { op: 'read' }));
        return;
      case 'sendWrite':
        if (w.voucher) this.spendVoucher(turn, w.voucher);
        this.ledger.writeSent(turn, w.serial!, ctx.area, w.value!, w.next!, w.counter! + 1);
        frame(this.sessions.command(ctx.session, { op: 'write', data: toB64(encodeValue(w.next!)), counter: w.counter! }));
        return;
      case 'answerReceipt': {
        const r = w.receipt!;
        this.ledger.seen(turn, w.serial!, ctx.area, w.next ?? w.value!, w.next ? w.counter! + 1 : w.counter!);
        turn.send(peer, 'normal.receipt', { op: ctx.op, area: ctx.area, ...r }, { corr: intent.request });
        this.work.delete(ctx.session);
        return;
      }
      case 'answerFailed':
        turn.send(peer, 'error', { code: intent.code, message: intent.message }, { corr: intent.request });
        this.work.delete(ctx.session);
        return;
      case 'endSession':
        this.sessions.end(ctx.session);
        return;
    }
  }
}
