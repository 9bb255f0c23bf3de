/**
 * The chip runtime: a secure element with non-volatile memory in LMDB.
 * It answers the terminal it is linked to; everything that matters arrives
 * as session frames from a SAM, relayed by terminal and server.
 *
 * The session crypto runs here (proofs, HKDF session keys, AEAD frames with
 * strictly increasing counters); the session lifecycle is chip.machine.ts;
 * whether a command may change an area is area.machine.ts, evaluated inside
 * the transaction that writes the area (chipAreas.ts: what each command does).
 */
import {
  backendForParty,
  chipProof,
  chipSessionCiphers,
  deriveSessionKeys,
  fromB64,
  samProof,
  Secret,
  toB64,
  verifyProof,
  CHALLENGE_BYTES,
  type CryptoBackend,
  type FrameOpener,
  type FrameSealer,
  type SessionBinding,
} from '../crypto/index.ts';
import { codeOf, ProtocolError, type Refusal } from '../protocol/errors.ts';
import { ACTIVE_SLOT, areaTransition } from '../machines/area.machine.ts';
import { chipMachine, CHIP_MACHINE_VERSION, type ChipIntent, type SessionPurpose } from '../machines/chip.machine.ts';
import { ChipMemory, type AreaRecord } from '../store/chip.store.ts';
import { decodeChipCommand, decodeChipFrame, encodeJson, type ChipCommand, type ChipFrame, type ChipReply } from '../transport/chip.frames.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { AREA_ACTOR_PREFIX, areaInspection, ChipAreas, refusal } from './chipAreas.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';

const CHIP_ACTOR = 'chip';

interface SessionCrypto {
  peer: string;
  binding: SessionBinding;
  key: Secret;
  rSam: Uint8Array;
  rChip: Uint8Array;
  sealer?: FrameSealer;
  opener?: FrameOpener;
}

export interface ChipOptions {
  serial: string;
  kChip: Uint8Array;
}

export class ChipRuntime extends PartyRuntime {
  protected readonly kinds: Record<string, MachineKind> = { chip: { machine: chipMachine, version: CHIP_MACHINE_VERSION } };
  readonly memory: ChipMemory;
  private readonly areas: ChipAreas;
  private serialValue = '';
  private kChip!: Secret;
  private readonly sessions = new Map<string, SessionCrypto>();
  private readonly pending = new Map<string, ChipCommand>();
  /** The frame being handled, and the last frame answered with what we answered (one, as a chip holds one session). */
  private answering: { session: string; incoming: string } | undefined;
  private lastAnswer: { session: string; incoming: string; outgoing: string } | undefined;
  /** The link the frame being handled came from (a refused challenge has no session to remember it by). */
  private framePeer: string | undefined;
  /** The portable backend, as a secure element runs (backend.choice.ts), unless VALMOVE_CRYPTO forces one. */
  readonly crypto: CryptoBackend;

  /** Where the areas' moves are reported (the run recorder, the live page), as an actor's are. */
  private readonly inspect: RuntimeDeps['inspect'];

  constructor(deps: RuntimeDeps) {
    super(deps);
    this.crypto = backendForParty(this.id);
    this.memory = new ChipMemory(deps.store);
    this.inspect = deps.inspect;
    // Reported once the turn is on disk: a record says what the chip's memory holds, never what it was about to.
    this.areas = new ChipAreas(
      this.memory,
      () => this.serialValue,
      (turn, rec) => turn.afterTurn(() => this.reportArea(rec)),
    );
  }

  /**
   * Reports one area's state, with the command that moved it there: the last
   * one it obeyed (a command that changes nothing is not remembered). A report
   * at power-on names it too, so a crash between the commit and the report
   * does not lose which migration and step moved the area.
   */
  private reportArea(rec: AreaRecord): void {
    this.inspect?.(this.id, `${AREA_ACTOR_PREFIX}${rec.area}`, areaInspection(this.id, rec.state, rec.last ?? undefined));
  }

  get serial(): string {
    return this.serialValue;
  }

  /** Opens a chip from its store; on a new store, personalises it with `make` (manufacturing). */
  override async start(make?: ChipOptions): Promise<void> {
    let id = this.memory.getIdentity();
    if (!id) {
      if (!make) throw new Error(`${this.id}: chip store is empty and no personalisation was given`);
      await this.memory.personalise({ serial: make.serial, kChip: make.kChip });
      id = this.memory.getIdentity()!;
    }
    this.serialValue = id.serial;
    this.kChip = Secret.of(id.kChip);
    await super.start();
    // Each area's state at power-on, so a recording or a live page started now knows where every area is.
    if (this.inspect) for (const rec of this.memory.list()) this.reportArea(rec);
    await this.runLocal((turn) => {
      // Power-on: RAM is gone, so any session the snapshot remembers is over.
      if (!this.actorOf(CHIP_ACTOR)) turn.spawn(CHIP_ACTOR, 'chip', { serial: this.serialValue });
      else turn.tryDispatch(CHIP_ACTOR, { type: 'POWER_ON' });
    });
  }

  // ---- issue 16: a stranger's chip.select writes nothing; a failed commit is a power cut -------

  /** chip.select only reads the directory: answered anew each time, never recorded. */
  protected override readonly requestsAnsweredFresh: ReadonlySet<string> = new Set(['chip.select']);

  protected override onReloaded(turn: TurnContext): void {
    // As at power-on: the session keys were RAM, and the snapshot was read back from before them.
    this.sessions.clear();
    this.lastAnswer = undefined;
    turn.tryDispatch(CHIP_ACTOR, { type: 'POWER_ON' });
  }

  // ---- inbound ----------------------------------------------------------------

  protected onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    this.answering = undefined;
    if (env.type === 'chip.select') {
      // The public directory, as a reader sees it when it polls the chip (¶0083).
      turn.reply(env, 'chip.info', {
        serial: this.serialValue,
        areas: this.memory
          .list()
          .filter((a) => a.state !== 'absent')
          .map((a) => ({ area: a.area, provider: a.provider })),
      });
      return;
    }
    if (env.type !== 'frame') throw new ProtocolError('UNEXPECTED', `a chip does not handle ${env.type}`);
    const { session, data } = env.body;
    const last = this.lastAnswer;
    if (last?.session === session && last.incoming === data) {
      // The SAM sent its frame again (our answer was lost on the way): the same answer, nothing runs twice.
      turn.send(peer, 'frame', { session, data: last.outgoing });
      return;
    }
    this.answering = { session, incoming: data };
    this.framePeer = peer;
    let frame: ChipFrame;
    try {
      frame = decodeChipFrame(fromB64(data));
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('FRAME_REJECTED', 'session frame is not base64url');
      this.sendFrame(turn, peer, session, { t: 'err', code: err.code, message: err.message });
      return;
    }
    switch (frame.t) {
      case 'auth1':
        this.onChallenge(turn, peer, session, frame);
        return;
      case 'auth3':
        this.onSamProof(turn, peer, session, frame);
        return;
      case 'cmd':
      case 'close':
        this.onSealed(turn, peer, session, frame.box, frame.t === 'close');
        return;
      default:
        this.sendFrame(turn, peer, session, { t: 'err', code: 'FRAME_REJECTED', message: `a chip does not accept ${frame.t} frames` });
    }
  }

  private onChallenge(turn: TurnContext, peer: string, session: string, f: Extract<ChipFrame, { t: 'auth1' }>): void {
    // A new challenge replaces whatever session was open (chip.machine.ts), so the keys of every earlier one go.
    // Found by test/security/hostileRelay.test.ts: a relay injecting challenges grew this table by one key per
    // challenge, without bound, and kept each abandoned session's area key in RAM.
    this.sessions.clear();
    const purpose = f.purpose as SessionPurpose;
    const binding: SessionBinding = { serial: this.serialValue, area: f.area, mig: f.mig, purpose };
    const rSam = fromB64(f.r);
    let refused: Refusal | undefined;
    let key: Secret | null = null;
    if (rSam.length !== CHALLENGE_BYTES) {
      refused = { code: 'FRAME_REJECTED', message: `the challenge must be ${CHALLENGE_BYTES} bytes` };
    } else if (purpose === 'admin') {
      if (f.area !== '*') refused = { code: 'FRAME_REJECTED', message: 'an admin session covers the whole chip: area must be "*"' };
      else key = this.kChip;
    } else {
      const rec = this.memory.get(f.area);
      const open = ({ upload: 'OPEN_UPLOAD', download: 'OPEN_DOWNLOAD', normal: 'OPEN_NORMAL' } as const)[purpose];
      if (!rec || rec.state === 'absent') refused = { code: 'AREA_ABSENT', message: `area ${f.area} does not exist on this chip` };
      else if (areaTransition(rec.state, open) === null) {
        refused =
          rec.state === 'locked' && purpose === 'normal'
            ? { code: 'AREA_LOCKED', message: `area ${f.area} is locked for a migration; normal use is refused` }
            : { code: 'AREA_STATE', message: `area ${f.area} is ${rec.state}; a ${purpose} session can not open` };
      } else {
        const slot = ACTIVE_SLOT[rec.state];
        const bytes = slot === 'main' ? rec.mainKey : rec.tempKey;
        if (bytes) key = Secret.of(bytes);
        else refused = { code: 'AREA_STATE', message: `area ${f.area} has no active key` };
      }
    }
    if (!refused && key) {
      const rChip = this.rng.bytes(CHALLENGE_BYTES);
      this.sessions.set(session, { peer, binding, key, rSam, rChip });
    }
    turn.dispatch(CHIP_ACTOR, { type: 'AUTH_REQUESTED', session, purpose, area: f.area, mig: f.mig, refusal: refused });
  }

  private onSamProof(turn: TurnContext, peer: string, session: string, f: Extract<ChipFrame, { t: 'auth3' }>): void {
    const s = this.sessions.get(session);
    const snap = this.actorOf(CHIP_ACTOR)!.getSnapshot();
    if (!s || snap.value !== 'challenged' || snap.context.session?.id !== session) {
      this.sendFrame(turn, peer, session, { t: 'err', code: 'FRAME_REJECTED', message: 'no challenge is outstanding for this session' });
      return;
    }
    const expected = samProof(s.key, s.binding, s.rSam, s.rChip);
    if (!verifyProof(expected, fromB64(f.proof))) {
      turn.dispatch(CHIP_ACTOR, { type: 'SAM_REJECTED', session, code: 'AUTH_FAILED', message: "the SAM's proof does not verify under the active key" });
      return;
    }
    const keys = deriveSessionKeys(s.key, s.binding, s.rSam, s.rChip);
    const { sealer, opener } = chipSessionCiphers(keys, this.crypto);
    s.sealer = sealer;
    s.opener = opener;
    turn.dispatch(CHIP_ACTOR, { type: 'SAM_PROVEN', session });
    this.onSealed(turn, peer, session, f.box, false);
  }

  private onSealed(turn: TurnContext, peer: string, session: string, box: string, isClose: boolean): void {
    const s = this.sessions.get(session);
    const snap = this.actorOf(CHIP_ACTOR)!.getSnapshot();
    if (!s?.opener || snap.value !== 'open' || snap.context.session?.id !== session) {
      this.sendFrame(turn, peer, session, { t: 'err', code: 'FRAME_REJECTED', message: 'this session is not open' });
      return;
    }
    let cmd: ChipCommand;
    try {
      cmd = decodeChipCommand(s.opener.open(fromB64(box)));
    } catch (e) {
      const code = codeOf(e, 'FRAME_REJECTED');
      const message = e instanceof Error ? e.message : 'frame rejected';
      this.sendFrame(turn, peer, session, { t: 'err', code, message });
      turn.dispatch(CHIP_ACTOR, { type: 'FRAME_REJECTED', session, code, message });
      return;
    }
    if (isClose || cmd.op === 'close') {
      turn.dispatch(CHIP_ACTOR, { type: 'CLOSE', session });
      return;
    }
    this.pending.set(session, cmd);
    turn.dispatch(CHIP_ACTOR, { type: 'COMMAND', session, op: cmd.op });
    this.pending.delete(session);
  }

  // ---- intents --------------------------------------------------------------------

  protected onIntent(_key: string, intent: ChipIntent, turn: TurnContext): void {
    switch (intent.type) {
      case 'answerChallenge': {
        const s = this.sessions.get(intent.session)!;
        const proof = chipProof(s.key, s.binding, s.rSam, s.rChip);
        this.sendFrame(turn, s.peer, intent.session, { t: 'auth2', serial: this.serialValue, r: toB64(s.rChip), proof: toB64(proof) });
        return;
      }
      case 'refuseAuth': {
        const peer = this.sessions.get(intent.session)?.peer ?? this.framePeer;
        this.sessions.delete(intent.session);
        if (peer) this.sendFrame(turn, peer, intent.session, { t: 'err', code: intent.code, message: intent.message });
        return;
      }
      case 'executeCommand': {
        const s = this.sessions.get(intent.session)!;
        const cmd = this.pending.get(intent.session)!;
        const reply = this.execute(turn, s.binding, cmd);
        this.sendSealed(turn, s, intent.session, reply);
        return;
      }
      case 'refuseCommand': {
        const s = this.sessions.get(intent.session);
        if (s) this.sendSealed(turn, s, intent.session, refusal(intent.code, intent.message));
        return;
      }
      case 'endSession':
        this.sessions.delete(intent.session);
        return;
    }
  }

  private sendFrame(turn: TurnContext, peer: string, session: string, frame: ChipFrame): void {
    const data = toB64(encodeJson(frame));
    if (this.answering?.session === session) this.lastAnswer = { ...this.answering, outgoing: data };
    turn.send(peer, 'frame', { session, data });
  }

  private sendSealed(turn: TurnContext, s: SessionCrypto, session: string, reply: ChipReply): void {
    this.sendFrame(turn, s.peer, session, { t: 'resp', box: toB64(s.sealer!.seal(encodeJson(reply))) });
  }

  // ---- commands: one LMDB transaction each (chipAreas.ts) -----------------------------

  /** Runs a session's command on the chip's areas (its own method, so a deliberately defective chip can wrap it: src/sim/rogue.ts). */
  private execute(turn: TurnContext, b: SessionBinding, cmd: ChipCommand): ChipReply {
    return this.areas.execute(turn, b, cmd);
  }
}
