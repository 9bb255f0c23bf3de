/**
 * The SAM side of chip sessions (protocol.md §2, mutual authentication: S6
 * and S13 under a temp key, and every admin and normal-use session),
 * shared by the admin SAM (K_chip), migration SAMs (temp keys) and normal
 * SAMs (main keys). Session state lives in RAM only: a SAM that restarts
 * loses its open sessions, and the step that needed one is retried with a
 * new session.
 */
import {
  chipProof,
  deriveSessionKeys,
  samProof,
  samSessionCiphers,
  toB64,
  fromB64,
  verifyProof,
  CHALLENGE_BYTES,
  type FrameOpener,
  type FrameSealer,
  type Purpose,
  type Rng,
  type Secret,
  type SessionBinding,
} from '../crypto/index.ts';
import { codeOf, ProtocolError, type ErrorCode } from '../protocol/errors.ts';
import { decodeChipReply, encodeJson, type ChipCommand, type ChipFrame, type ChipReply } from '../transport/chip.frames.ts';

/** Open sessions one SAM keeps at once; the oldest is dropped beyond this. */
export const SAM_SESSIONS_MAX = 4_096;

export interface SessionSpec {
  session: string;
  area: string;
  mig: string;
  purpose: Purpose;
}

interface Open {
  spec: SessionSpec;
  rSam: Uint8Array;
  serial?: string;
  proof?: Uint8Array;
  sealer?: FrameSealer;
  opener?: FrameOpener;
  sentFirst: boolean;
  /** The last frame the chip sent in this session, as it came (a repeat of it is dropped). */
  lastIn?: string;
}

export type Answer = { kind: 'answered'; serial: string; proofOk: boolean } | { kind: 'refused'; code: ErrorCode; message: string };
export type Reply = { kind: 'reply'; reply: ChipReply } | { kind: 'refused'; code: ErrorCode; message: string };

export class SamSessions {
  private readonly open = new Map<string, Open>();

  constructor(private readonly rng: Rng) {}

  has(session: string): boolean {
    return this.open.has(session);
  }

  /**
   * Whether `data` is the chip's last frame of `session` again: when we send
   * a frame again (src/runtime/resends.ts) and both copies reach the chip, it
   * answers both, the same way; the second answer is dropped here, so nothing
   * runs twice (a sealed reply would fail its counter).
   */
  repeat(session: string, data: string): boolean {
    return this.open.get(session)?.lastIn === data;
  }

  /** Handles the chip's frame of `session` with `handle`; once taken (not refused: `handle` did not throw), a repeat of it is dropped (`repeat`). */
  take(session: string, data: string, handle: () => void): void {
    handle();
    const s = this.open.get(session);
    if (s) s.lastIn = data;
  }

  /** The challenge frame (auth1). */
  begin(spec: SessionSpec): Uint8Array {
    if (this.open.size >= SAM_SESSIONS_MAX) {
      const oldest = this.open.keys().next().value;
      if (oldest !== undefined) this.open.delete(oldest);
    }
    const rSam = this.rng.bytes(CHALLENGE_BYTES);
    this.open.set(spec.session, { spec, rSam, sentFirst: false });
    return encodeJson({ t: 'auth1', area: spec.area, mig: spec.mig, purpose: spec.purpose, r: toB64(rSam) });
  }

  /**
   * The chip's answer to our challenge. `keyFor` gives the key this SAM
   * would use for the serial the chip claims, or null when it has none (or
   * must not use one for that serial): then the proof simply fails.
   */
  answer(session: string, frame: ChipFrame, keyFor: (serial: string) => Secret | null): Answer {
    const s = this.open.get(session);
    if (!s) throw new ProtocolError('UNEXPECTED', `no open session ${session}`);
    if (frame.t === 'err') return { kind: 'refused', code: frame.code, message: frame.message };
    if (frame.t !== 'auth2' || s.serial !== undefined) {
      return { kind: 'refused', code: 'FRAME_REJECTED', message: `expected the chip's auth2, got ${frame.t}` };
    }
    const rChip = fromB64(frame.r);
    const key = keyFor(frame.serial);
    s.serial = frame.serial;
    if (!key || rChip.length !== CHALLENGE_BYTES) return { kind: 'answered', serial: frame.serial, proofOk: false };
    const binding: SessionBinding = { serial: frame.serial, area: s.spec.area, mig: s.spec.mig, purpose: s.spec.purpose };
    const ok = verifyProof(chipProof(key, binding, s.rSam, rChip), fromB64(frame.proof));
    if (ok) {
      const keys = deriveSessionKeys(key, binding, s.rSam, rChip);
      const { sealer, opener } = samSessionCiphers(keys);
      s.sealer = sealer;
      s.opener = opener;
      s.proof = samProof(key, binding, s.rSam, rChip);
    }
    return { kind: 'answered', serial: frame.serial, proofOk: ok };
  }

  /** The chip's answer to our challenge, as the event every SAM machine takes. */
  answerEvent(
    session: string,
    frame: ChipFrame,
    keyFor: (serial: string) => Secret | null,
  ): { type: 'CHIP_ANSWERED'; serial: string; proofOk: boolean } | { type: 'CHIP_REFUSED'; code: ErrorCode; message: string } {
    const a = this.answer(session, frame, keyFor);
    return a.kind === 'refused' ? { type: 'CHIP_REFUSED', code: a.code, message: a.message } : { type: 'CHIP_ANSWERED', serial: a.serial, proofOk: a.proofOk };
  }

  /** A sealed command: the first one rides with our proof (auth3). */
  command(session: string, cmd: ChipCommand): Uint8Array {
    const s = this.open.get(session);
    if (!s?.sealer || !s.proof) throw new ProtocolError('UNEXPECTED', `session ${session} is not authenticated`);
    const box = toB64(s.sealer.seal(encodeJson(cmd)));
    if (!s.sentFirst) {
      s.sentFirst = true;
      return encodeJson({ t: 'auth3', proof: toB64(s.proof), box });
    }
    return encodeJson({ t: 'cmd', box });
  }

  /** Opens the chip's reply to the last command. A bad frame ends the session. */
  reply(session: string, frame: ChipFrame): Reply {
    const s = this.open.get(session);
    if (!s) throw new ProtocolError('UNEXPECTED', `no open session ${session}`);
    if (frame.t === 'err') return { kind: 'refused', code: frame.code, message: frame.message };
    if (frame.t !== 'resp' || !s.opener) return { kind: 'refused', code: 'FRAME_REJECTED', message: `expected a sealed reply, got ${frame.t}` };
    try {
      return { kind: 'reply', reply: decodeChipReply(s.opener.open(fromB64(frame.box))) };
    } catch (e) {
      const code = codeOf(e, 'FRAME_REJECTED');
      return { kind: 'refused', code, message: e instanceof Error ? e.message : 'reply rejected' };
    }
  }

  serialOf(session: string): string | undefined {
    return this.open.get(session)?.serial;
  }

  /**
   * Ends a session on our side. The chip is not told (issue 19: no close
   * frame): its session ends with the next one it opens, and without our
   * keys nobody can send it another command.
   */
  end(session: string): void {
    this.open.delete(session);
  }
}
