/**
 * A provider's normal SAM (seed 11): the main-key logic. Main keys are
 * diversified per chip and area, K_main = KDF(providerMaster, serial, area),
 * so this SAM derives them on demand and stores none.
 *
 * It serves normal use for terminals acting as readers, and, for its own
 * migration SAM only, seals the destination's main key for a download.
 */
import { deriveMainKey, fromB64, sealTo, toB64, type Identity, type Secret } from '../crypto/index.ts';
import { ProtocolError } from '../errors.ts';
import { normalSamMachine, NORMAL_SAM_MACHINE_VERSION, type NormalSamContext, type NormalSamIntent } from '../machines/normalSam.machine.ts';
import { decodeChipFrame } from '../transport/chip.frames.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { applyNormalOp, decodeValue, encodeValue, type NormalReceipt, type ValueItem } from './value.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps } from './runtime.ts';
import { SamSessions } from './samSession.ts';

const READER = 'reader:';

/** The label binding a sealed main key to its purpose. */
export const MAIN_KEY_SEAL_INFO = 'valmove/v1/main-key';
/** Reader sessions one reader link may have open at once (a reader serves one card at a time; a few for retries). */
export const READER_SESSIONS_PER_LINK_MAX = 4;

export interface NormalSamOptions {
  provider: string;
  providerMaster: Secret;
  identity: Identity;
  /** The box key of this provider's own migration SAM (the only party that may ask for a main key). */
  migrationSamBoxPublic: Uint8Array;
}

interface ReaderWork {
  peer: string;
  amount: number | undefined;
  value?: ValueItem;
  counter?: number;
  next?: ValueItem | null;
  receipt?: NormalReceipt;
}

export class NormalSamRuntime extends PartyRuntime {
  // discardWhenDone: one session per payment; once answered (the reply is in the inbox) nothing of it is kept.
  protected readonly kinds: Record<string, MachineKind> = { normalSam: { machine: normalSamMachine, version: NORMAL_SAM_MACHINE_VERSION, discardWhenDone: true } };
  private readonly sessions: SamSessions;
  private readonly work = new Map<string, ReaderWork>();
  private readonly opts: NormalSamOptions;

  constructor(deps: RuntimeDeps, opts: NormalSamOptions) {
    super(deps);
    this.opts = opts;
    this.sessions = new SamSessions(deps.rng);
  }

  get migrationSamPeer(): string {
    return `migration-sam/${this.opts.provider}`;
  }

  /** After a restart, sessions in progress are lost (their keys lived in RAM): fail them so their steps are retried. */
  override async start(): Promise<void> {
    await super.start();
    await this.runLocal(() => {
      for (const key of this.actorKeys('normalSam')) this.tryDispatch(key, { type: 'SESSION_LOST' });
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
      this.sessions.close(session);
    }
    // Their sessions fail; each answer goes into the inbox, for the reader's repeat on a new link. Their frames
    // waiting for the reader are given up: a reader that never comes back must not hold outbox records.
    void this.runLocal(() => {
      this.abandonRequestsTo(peer, 'frame');
      for (const session of lost) this.tryDispatch(READER + session, { type: 'SESSION_LOST' });
    }).catch(() => {});
  }

  protected override onReloaded(): void {
    for (const key of this.actorKeys('normalSam')) this.tryDispatch(key, { type: 'SESSION_LOST' });
  }

  protected onEnvelope(env: AnyEnvelope, peer: string): void {
    switch (env.type) {
      case 'nsam.main-key': {
        if (peer !== this.migrationSamPeer) throw new ProtocolError('NOT_TRUSTED', `only ${this.migrationSamPeer} may ask this SAM for a main key`);
        const key = deriveMainKey(this.opts.providerMaster, env.body.serial, env.body.area);
        const aad = new TextEncoder().encode(`${env.body.serial}/${env.body.area}`);
        const sealed = sealTo(this.opts.migrationSamBoxPublic, key.reveal(), MAIN_KEY_SEAL_INFO, aad, this.rng);
        this.reply(env, 'nsam.main-key.sealed', sealed);
        return;
      }
      case 'normal.begin': {
        if (!peer.startsWith('terminal/')) throw new ProtocolError('BAD_SENDER', 'normal use comes from a terminal acting as a reader');
        const key = READER + env.body.session;
        if (this.actorOf(key)) throw new ProtocolError('UNEXPECTED', `reader session ${env.body.session} was already used`);
        if (this.readerSessions(peer) >= READER_SESSIONS_PER_LINK_MAX) {
          throw new ProtocolError('BUSY', `${peer} has ${READER_SESSIONS_PER_LINK_MAX} reader sessions open, the most one reader may; finish one first`);
        }
        this.work.set(env.body.session, { peer, amount: env.body.amount });
        this.spawn(key, 'normalSam', { session: env.body.session, op: env.body.op, area: env.body.area, request: env.id, deadline: this.clock.now() + this.timing.sessionMs });
        return;
      }
      case 'frame':
        return this.onFrame(env.body.session, env.body.data, peer);
      default:
        throw new ProtocolError('UNEXPECTED', `a normal SAM does not accept ${env.type}`);
    }
  }

  private onFrame(session: string, data: string, peer: string): void {
    const key = READER + session;
    const actor = this.actorOf(key);
    const w = this.work.get(session);
    if (!actor || actor.getSnapshot().status !== 'active' || !w || w.peer !== peer || !this.sessions.has(session)) {
      throw new ProtocolError('NOT_FOUND', `no open reader session ${session.slice(0, 64)}`);
    }
    const ctx = actor.getSnapshot().context as NormalSamContext;
    const frame = decodeChipFrame(fromB64(data));
    if (actor.getSnapshot().matches('authenticating')) {
      this.dispatch(key, this.sessions.answerEvent(session, frame, (serial) => deriveMainKey(this.opts.providerMaster, serial, ctx.area)));
      return;
    }
    const r = this.sessions.reply(session, frame);
    if (r.kind === 'refused') return this.dispatch(key, { type: 'CHIP_REFUSED', code: r.code, message: r.message });
    const reply = r.reply;
    if (actor.getSnapshot().matches('reading')) {
      if (!reply.ok || reply.data === undefined || reply.counter === undefined) {
        const code = reply.ok ? 'BAD_BODY' : reply.code;
        const message = reply.ok ? 'the chip returned no value' : reply.message;
        return this.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code, message });
      }
      let value: ValueItem;
      try {
        value = decodeValue(fromB64(reply.data));
      } catch (e) {
        return this.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code: 'BAD_BODY', message: (e as Error).message });
      }
      const outcome = applyNormalOp(value, ctx.op, w.amount);
      if ('error' in outcome) {
        return this.dispatch(key, { type: 'VALUE_READ', ok: false, next: 'refuse', code: outcome.error.code, message: outcome.error.message });
      }
      Object.assign(w, { value, counter: reply.counter, next: outcome.next, receipt: outcome.receipt });
      return this.dispatch(key, { type: 'VALUE_READ', ok: true, next: outcome.next ? 'write' : 'done' });
    }
    if (reply.ok) return this.dispatch(key, { type: 'VALUE_WRITTEN', ok: true });
    return this.dispatch(key, { type: 'VALUE_WRITTEN', ok: false, code: reply.code, message: reply.message });
  }

  protected onIntent(key: string, intent: NormalSamIntent): void {
    const ctx = this.actorOf(key)!.getSnapshot().context as NormalSamContext;
    const w = this.work.get(ctx.session);
    const peer = w?.peer;
    if (!peer) {
      // Its work is gone (a restart, or the reader's link closed): the failure still answers the request, into the inbox.
      if (intent.type === 'answerFailed') this.send(this.peerOfRequest(intent.request), 'error', { code: intent.code, message: intent.message }, { corr: intent.request });
      return;
    }
    const frame = (bytes: Uint8Array) => this.send(peer, 'frame', { session: ctx.session, data: toB64(bytes) });
    switch (intent.type) {
      case 'beginAuth':
        frame(this.sessions.begin({ session: ctx.session, area: ctx.area, mig: '-', purpose: 'normal' }));
        return;
      case 'sendRead':
        frame(this.sessions.command(ctx.session, { op: 'read' }));
        return;
      case 'sendWrite':
        frame(this.sessions.command(ctx.session, { op: 'write', data: toB64(encodeValue(w.next!)), counter: w.counter! }));
        return;
      case 'answerReceipt': {
        const r = w.receipt!;
        this.send(peer, 'normal.receipt', { op: ctx.op, area: ctx.area, ...r }, { corr: intent.request });
        this.work.delete(ctx.session);
        return;
      }
      case 'answerFailed':
        this.send(peer, 'error', { code: intent.code, message: intent.message }, { corr: intent.request });
        this.work.delete(ctx.session);
        return;
      case 'endSession': {
        const close = this.sessions.close(ctx.session);
        if (close) frame(close);
        return;
      }
    }
  }
}
