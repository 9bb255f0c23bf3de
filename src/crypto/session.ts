/**
 * Chip <-> SAM sessions (protocol.md §2; S6 and S13 under a temp key): symmetric mutual authentication
 * keyed by the area's active key (FeliCa / GlobalPlatform style), then AEAD
 * frames (ChaCha20-Poly1305) with a per-direction counter in the nonce. A
 * frame whose counter is not exactly the next one is refused: no replay, no
 * reordering inside a session. A SAM holding the wrong slot's key simply
 * fails to authenticate: that is how locking works.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { currentBackend, type CryptoBackend } from './backend.ts';
import { concatBytes, encodeFields, equalBytes, readU64be, u32be, u64be, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import { requireKey } from './keys.ts';
import { Secret } from './secret.ts';
import { countCrypto } from '../metrics/counters.ts';

export type Purpose = 'admin' | 'upload' | 'download' | 'normal';

export interface SessionBinding {
  serial: string;
  area: string;
  mig: string;
  purpose: Purpose;
}

export const CHALLENGE_BYTES = 16;
export const PROOF_BYTES = 32;
/** Largest plaintext in one session frame. */
export const FRAME_BYTES_MAX = 16 * 1024;
const COUNTER_BYTES = 8;
const TAG_BYTES = 16;

/** Both challenges must be full length: a short (or empty) one would let a recorded proof be replayed. */
function requireChallenges(rSam: Bytes, rChip: Bytes): void {
  if (!(rSam instanceof Uint8Array) || !(rChip instanceof Uint8Array) || rSam.length !== CHALLENGE_BYTES || rChip.length !== CHALLENGE_BYTES) {
    throw new CryptoError('AUTH_FAILED', `session challenges must be ${CHALLENGE_BYTES} bytes each`);
  }
}

function requireSessionInput(key: Secret, rSam: Bytes, rChip: Bytes): void {
  requireKey(key, 'a session key');
  requireChallenges(rSam, rChip);
}

export function chipProof(key: Secret, b: SessionBinding, rSam: Bytes, rChip: Bytes): Bytes {
  requireSessionInput(key, rSam, rChip);
  countCrypto('hmac');
  return hmac(sha256, key.reveal(), encodeFields('valmove/v1/auth/chip', rSam, rChip, b.serial, b.area, b.mig, b.purpose));
}

export function samProof(key: Secret, b: SessionBinding, rSam: Bytes, rChip: Bytes): Bytes {
  requireSessionInput(key, rSam, rChip);
  countCrypto('hmac');
  return hmac(sha256, key.reveal(), encodeFields('valmove/v1/auth/sam', rChip, rSam, b.serial, b.area, b.mig, b.purpose));
}

/** Constant time; a proof of the wrong length is simply not equal. */
export function verifyProof(expected: Bytes, got: Bytes): boolean {
  return expected.length === PROOF_BYTES && equalBytes(expected, got);
}

/**
 * Two direction keys from the area key, both challenges and the binding: a
 * session can not be moved to another chip, area, migration or purpose.
 */
export function deriveSessionKeys(key: Secret, b: SessionBinding, rSam: Bytes, rChip: Bytes): { samToChip: Secret; chipToSam: Secret } {
  requireSessionInput(key, rSam, rChip);
  countCrypto('hkdf');
  const okm = hkdf(sha256, key.reveal(), concatBytes(rSam, rChip), encodeFields('valmove/v1/session', b.serial, b.area, b.mig, b.purpose), 64);
  const keys = { samToChip: Secret.of(okm.subarray(0, 32)), chipToSam: Secret.of(okm.subarray(32)) };
  okm.fill(0); // Secret.of copied it
  return keys;
}

function nonce(direction: 0 | 1, counter: bigint): Bytes {
  return concatBytes(u32be(direction), u64be(counter));
}

/** The direction is in the nonce, so the two directions never share one even if their keys were equal. */
function requireFrameKey(key: Secret, direction: number): void {
  requireKey(key, 'a session frame key');
  if (direction !== 0 && direction !== 1) throw new CryptoError('BAD_PARAMS', 'a frame direction is 0 (SAM to chip) or 1 (chip to SAM)');
}

export class FrameSealer {
  private counter = 0n;
  constructor(
    private readonly key: Secret,
    private readonly direction: 0 | 1,
    private readonly crypto: CryptoBackend = currentBackend(),
  ) {
    requireFrameKey(key, direction);
  }

  seal(plaintext: Bytes): Bytes {
    if (plaintext.length > FRAME_BYTES_MAX) throw new CryptoError('FRAME_TOO_LARGE', `a session frame holds at most ${FRAME_BYTES_MAX} bytes`);
    const c = this.counter++;
    const head = u64be(c);
    countCrypto('aead.seal.session', plaintext.length);
    return concatBytes(head, this.crypto.chacha20poly1305.seal(this.key, nonce(this.direction, c), plaintext, head));
  }
}

export class FrameOpener {
  private expected = 0n;
  constructor(
    private readonly key: Secret,
    private readonly direction: 0 | 1,
    private readonly crypto: CryptoBackend = currentBackend(),
  ) {
    requireFrameKey(key, direction);
  }

  /** Opens the next frame; on any error nothing advances. */
  open(frame: Bytes): Bytes {
    if (frame.length < COUNTER_BYTES + TAG_BYTES) throw new CryptoError('FRAME_TAMPERED', 'session frame is too short');
    if (frame.length > COUNTER_BYTES + TAG_BYTES + FRAME_BYTES_MAX) throw new CryptoError('FRAME_TOO_LARGE', 'session frame is too large');
    const c = readU64be(frame);
    if (c < this.expected) throw new CryptoError('FRAME_REPLAY', `frame counter ${c} was already used; expected ${this.expected}`);
    if (c > this.expected) throw new CryptoError('FRAME_REORDER', `frame counter ${c} arrived before ${this.expected}`);
    let plain: Bytes;
    countCrypto('aead.open.session', frame.length - COUNTER_BYTES - TAG_BYTES);
    try {
      plain = this.crypto.chacha20poly1305.open(this.key, nonce(this.direction, c), frame.subarray(COUNTER_BYTES), frame.subarray(0, COUNTER_BYTES));
    } catch {
      throw new CryptoError('FRAME_TAMPERED', `frame ${c} fails authentication`);
    }
    this.expected = c + 1n;
    return plain;
  }
}

export function samSessionCiphers(
  keys: { samToChip: Secret; chipToSam: Secret },
  crypto: CryptoBackend = currentBackend(),
): { sealer: FrameSealer; opener: FrameOpener } {
  return { sealer: new FrameSealer(keys.samToChip, 0, crypto), opener: new FrameOpener(keys.chipToSam, 1, crypto) };
}

/** The chip side; a chip runs the portable backend (backend.choice.ts), so its runtime passes it. */
export function chipSessionCiphers(
  keys: { samToChip: Secret; chipToSam: Secret },
  crypto: CryptoBackend = currentBackend(),
): { sealer: FrameSealer; opener: FrameOpener } {
  return { sealer: new FrameSealer(keys.chipToSam, 1, crypto), opener: new FrameOpener(keys.samToChip, 0, crypto) };
}
