/**
 * Server <-> SAM channels (protocol.md §2): static Ed25519 identities and
 * ephemeral X25519 keys, then AEAD. Trust is configured, not discovered: the
 * initiator knows the responder's key; the responder checks the initiator's
 * key against its trust list (or, for a terminal, accepts it anonymous: the
 * user then logs in inside the channel).
 *
 *   hello   I -> R  { v, from, id?, eph, nonce }
 *   accept  R -> I  { v, from, id, eph, sig_R(th1) }    th1 = H(hello, R id, R eph)
 *   finish  I -> R  { v, sig_I(H(th1, sig_R)) }         (only when I named an id)
 *   keys = HKDF(X25519(eph_I, eph_R), salt th1) -> one key per direction
 *
 * hello bytes = fields(label, v, from, id present 0|1, id, eph, nonce). Each
 * side runs once: a second cipher from the same keys would reuse nonces.
 *
 * These are pure message functions; secure.link.ts runs them over any Link.
 * Channel messages tolerate loss and reordering (the transport may drop and
 * the protocol retries), but never replay: a sliding window refuses a
 * counter seen before.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { currentBackend, type CryptoBackend } from './backend.ts';
import { encodeFields, equalBytes, fromB64, toB64, utf8, type Bytes } from './bytes.ts';
import { CryptoError, type CryptoErrorCode } from './errors.ts';
import { keysOf, sign, verifySignature, type Identity } from './identity.ts';
import type { Rng } from './random.ts';
import { Secret } from './secret.ts';
import { countCrypto } from '../metrics/counters.ts';

/** Counters remembered by a receiver: older ones are refused, so memory stays bounded however long the channel lives. */
export const CHANNEL_REPLAY_WINDOW = 1024;
/** Largest plaintext in one channel message (envelopes are at most 64 KiB; this leaves room and still bounds a buffer). */
export const CHANNEL_BYTES_MAX = 1024 * 1024;
/** A party's name in a handshake: a short id such as "migration-sam/emoney". */
export const CHANNEL_NAME_CHARS_MAX = 128;
export const CHANNEL_NONCE_BYTES = 16;
const X25519_BYTES = 32;
const ED25519_PUBLIC_BYTES = 32;
const ED25519_SIG_BYTES = 64;
const COUNTER_BYTES = 8;
const NONCE_BYTES = 12;
/** A counter's high 32 bits at most: counters stay below 2^53, exact as numbers. */
const COUNTER_HIGH_MAX = 2 ** 21 - 1;

/** The 12-byte AEAD nonce: the direction as a big-endian u32, then the counter as a big-endian u64 (its last 8 bytes, the message's head). */
function channelNonce(dir: number, c: number): Uint8Array {
  const nonce = new Uint8Array(NONCE_BYTES);
  const view = new DataView(nonce.buffer);
  view.setUint32(0, dir);
  view.setUint32(4, Math.floor(c / 2 ** 32));
  view.setUint32(8, c >>> 0);
  return nonce;
}
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export interface ChannelHello {
  v: 1;
  from: string;
  /** The initiator's Ed25519 public key; absent for an anonymous initiator. */
  id?: string;
  eph: string;
  nonce: string;
}

export interface ChannelAccept {
  v: 1;
  from: string;
  id: string;
  eph: string;
  sig: string;
}

export interface ChannelFinish {
  v: 1;
  sig: string;
}

/**
 * What a responder says of a hello, before any public-key work: admitted
 * (true), refused for not being in the trust configuration (false), or
 * refused with its own reason (a name bound to another key, say), which the
 * initiator is told.
 */
export type TrustVerdict = boolean | { code: CryptoErrorCode; message: string };

/** A responder's trust decision: the initiator's Ed25519 key (base64url; undefined when anonymous) and the name it gave. */
export type TrustCheck = (initiatorSignPublicB64: string | undefined, name: string) => TrustVerdict;

const fail = (message: string): CryptoError => new CryptoError('HANDSHAKE_FAILED', message);

function field(msg: unknown, name: string): unknown {
  return typeof msg === 'object' && msg !== null ? (msg as Record<string, unknown>)[name] : undefined;
}

function requireVersion(msg: unknown, what: string): void {
  if (field(msg, 'v') !== 1) throw fail(`the ${what} is not a version 1 channel message`);
}

function name(msg: unknown): string {
  const x = field(msg, 'from');
  if (typeof x !== 'string' || x.length === 0 || x.length > CHANNEL_NAME_CHARS_MAX) {
    throw fail(`a handshake names its sender in 1 to ${CHANNEL_NAME_CHARS_MAX} characters`);
  }
  return x;
}

/** A base64url field that must decode to exactly `bytes` bytes; returned decoded. */
function b64Field(msg: unknown, key: string, bytes: number): Bytes {
  const x = field(msg, key);
  // 4 chars per 3 bytes, rounded up: a longer string can not be right, so it is not decoded at all.
  if (typeof x !== 'string' || x.length > Math.ceil((bytes * 4) / 3)) throw fail(`handshake field "${key}" is missing or malformed`);
  let b: Bytes;
  try {
    b = fromB64(x);
  } catch {
    throw fail(`handshake field "${key}" is not base64url`);
  }
  if (b.length !== bytes) throw fail(`handshake field "${key}" must be ${bytes} bytes`);
  return b;
}

/**
 * Canonical bytes of a hello. Whether an id is present is encoded on its own
 * (0 or 1), so an anonymous hello and one with an empty id never collide.
 */
function helloBytes(h: ChannelHello): Bytes {
  const id = h.id === undefined ? new Uint8Array(0) : fromB64(h.id);
  return encodeFields('valmove/v1/chan/hello', h.v, h.from, h.id === undefined ? 0 : 1, id, fromB64(h.eph), fromB64(h.nonce));
}

function transcript1(h: ChannelHello, rId: Bytes, rEph: Bytes): Bytes {
  countCrypto('sha256');
  return sha256(encodeFields('valmove/v1/chan/accept', helloBytes(h), rId, rEph));
}

function finishBytes(th1: Bytes, sigR: Bytes): Bytes {
  countCrypto('sha256');
  return sha256(encodeFields('valmove/v1/chan/finish', th1, sigR));
}

function deriveKeys(ephSecret: Bytes, peerEph: Bytes, th1: Bytes, crypto: CryptoBackend): { i2r: Secret; r2i: Secret } {
  let shared: Bytes;
  countCrypto('x25519.ecdh');
  try {
    shared = crypto.x25519.shared(ephSecret, peerEph);
  } catch {
    // Both backends refuse low-order points, which would make the shared secret known to anyone.
    throw fail("the peer's ephemeral key is not a usable X25519 point");
  }
  countCrypto('hkdf');
  const okm = hkdf(sha256, shared, th1, utf8('valmove/v1/chan/keys'), 2 * KEY_BYTES);
  const keys = { i2r: Secret.of(okm.subarray(0, KEY_BYTES)), r2i: Secret.of(okm.subarray(KEY_BYTES)) };
  shared.fill(0);
  okm.fill(0);
  return keys;
}

/**
 * One established channel, one key per direction. Unlike chip session frames
 * it tolerates loss and reordering (the transport may drop and the protocol
 * retries), but never replay: a counter seen before, or older than the
 * window, is refused.
 */
export class ChannelCipher {
  /** Counters are numbers: a channel never carries 2^53 messages; a received one at or past it is refused. */
  private sendCounter = 0;
  /** Highest counter opened so far; -1 before the first. */
  private highest = -1;
  /**
   * The counters opened within the window below `highest`, one bit each (bit
   * c mod the window): 128 bytes per channel whatever it carried, where a set
   * of counters held up to a window's worth of bigints and was walked at
   * every new highest.
   */
  private readonly opened = new Uint8Array(CHANNEL_REPLAY_WINDOW / 8);

  constructor(
    private readonly sendKey: Secret,
    private readonly recvKey: Secret,
    private readonly sendDir: 0 | 1,
    private readonly crypto: CryptoBackend = currentBackend(),
  ) {
    if (sendKey.length !== KEY_BYTES || recvKey.length !== KEY_BYTES) throw new CryptoError('BAD_KEY', `channel keys must be ${KEY_BYTES} bytes`);
    if (sendDir !== 0 && sendDir !== 1) throw new CryptoError('BAD_PARAMS', 'a channel direction is 0 (initiator) or 1 (responder)');
  }

  seal(plaintext: Bytes): Bytes {
    if (plaintext.length > CHANNEL_BYTES_MAX) throw new CryptoError('BAD_PARAMS', `a channel message holds at most ${CHANNEL_BYTES_MAX} bytes`);
    const c = this.sendCounter++;
    const nonce = channelNonce(this.sendDir, c);
    const head = nonce.subarray(4);
    countCrypto('aead.seal.channel', plaintext.length);
    const sealed = this.crypto.chacha20poly1305.seal(this.sendKey, nonce, plaintext, head);
    const out = new Uint8Array(COUNTER_BYTES + sealed.length);
    out.set(head);
    out.set(sealed, COUNTER_BYTES);
    return out;
  }

  /** Opens a message; a failed open changes nothing. */
  open(box: Bytes): Bytes {
    if (box.length < COUNTER_BYTES + TAG_BYTES) throw new CryptoError('CHANNEL_TAMPERED', 'channel message is too short');
    if (box.length > COUNTER_BYTES + TAG_BYTES + CHANNEL_BYTES_MAX) throw new CryptoError('CHANNEL_TAMPERED', 'channel message is too long');
    const view = new DataView(box.buffer, box.byteOffset, COUNTER_BYTES);
    const hi = view.getUint32(0);
    if (hi > COUNTER_HIGH_MAX) throw new CryptoError('CHANNEL_TAMPERED', 'channel message counter is out of range');
    const c = hi * 2 ** 32 + view.getUint32(4);
    const window = CHANNEL_REPLAY_WINDOW;
    if (c + window <= this.highest || (c <= this.highest && this.isOpened(c))) {
      throw new CryptoError('CHANNEL_REPLAY', `channel message ${c} was already received or is older than the replay window`);
    }
    const head = box.subarray(0, COUNTER_BYTES);
    const nonce = new Uint8Array(NONCE_BYTES);
    nonce[3] = 1 - this.sendDir;
    nonce.set(head, 4);
    let plain: Bytes;
    countCrypto('aead.open.channel', box.length - COUNTER_BYTES - TAG_BYTES);
    try {
      plain = this.crypto.chacha20poly1305.open(this.recvKey, nonce, box.subarray(COUNTER_BYTES), head);
    } catch {
      throw new CryptoError('CHANNEL_TAMPERED', `channel message ${c} fails authentication`);
    }
    // Only an authentic message moves the window: a forged counter can not push real ones out.
    if (c > this.highest) {
      // The counters the window leaves behind free their bits for the ones it now covers.
      if (c - this.highest >= window) this.opened.fill(0);
      else for (let k = this.highest + 1; k <= c; k++) this.mark(k, false);
      this.highest = c;
    }
    this.mark(c, true);
    return plain;
  }

  private isOpened(c: number): boolean {
    const bit = c % CHANNEL_REPLAY_WINDOW;
    return (this.opened[bit >> 3]! & (1 << (bit & 7))) !== 0;
  }

  private mark(c: number, on: boolean): void {
    const bit = c % CHANNEL_REPLAY_WINDOW;
    if (on) this.opened[bit >> 3]! |= 1 << (bit & 7);
    else this.opened[bit >> 3]! &= ~(1 << (bit & 7));
  }
}

export class ChannelInitiator {
  private eph?: Bytes;
  private sentHello?: ChannelHello;
  private done = false;
  private readonly crypto: CryptoBackend;

  /** The responder's configured keys: one, or (an identity key's rotation window, docs/deploying.md) the old and the new. */
  private readonly peerKeys: readonly Bytes[];

  /** `crypto`: the backend of the party this side runs for (backend.choice.ts); the process's when absent. */
  constructor(private readonly opts: { name: string; identity?: Identity; peerSignPublic: Bytes | readonly Bytes[]; rng: Rng; crypto?: CryptoBackend }) {
    this.crypto = opts.crypto ?? currentBackend();
    this.peerKeys = keysOf(opts.peerSignPublic);
    if (this.peerKeys.length === 0 || !this.peerKeys.every((k) => k instanceof Uint8Array && k.length === ED25519_PUBLIC_BYTES)) {
      throw new CryptoError('BAD_KEY', `the responder's configured key must be ${ED25519_PUBLIC_BYTES} bytes`);
    }
    this.eph = opts.rng.bytes(X25519_BYTES);
  }

  /** The same hello every time it is asked for (a resend), so the transcript stays one. */
  hello(): ChannelHello {
    if (this.sentHello) return { ...this.sentHello };
    if (!this.eph) throw fail('this handshake is over');
    countCrypto('x25519.keygen');
    this.sentHello = {
      v: 1,
      from: this.opts.name,
      ...(this.opts.identity ? { id: toB64(this.opts.identity.signPublic) } : {}),
      eph: toB64(this.crypto.x25519.publicKey(this.eph)),
      nonce: toB64(this.opts.rng.bytes(CHANNEL_NONCE_BYTES)),
    };
    return { ...this.sentHello };
  }

  /**
   * Checks the responder's key and signature and derives the keys. Once only:
   * a second cipher from the same keys would reuse nonces.
   */
  accept(msg: ChannelAccept): { finish?: ChannelFinish; cipher: ChannelCipher } {
    const hello = this.sentHello;
    if (!hello || !this.eph) throw fail('accept before hello');
    if (this.done) throw fail('this handshake is already complete');
    requireVersion(msg, 'accept');
    const from = name(msg);
    const id = b64Field(msg, 'id', ED25519_PUBLIC_BYTES);
    const eph = b64Field(msg, 'eph', X25519_BYTES);
    const sig = b64Field(msg, 'sig', ED25519_SIG_BYTES);
    if (!this.peerKeys.some((k) => equalBytes(id, k))) {
      throw new CryptoError('UNTRUSTED_PEER', `${from} answered with a key that is not the one configured for it`);
    }
    const th1 = transcript1(hello, id, eph);
    if (!verifySignature(id, th1, sig, this.crypto)) throw fail("the responder's handshake signature is invalid");
    const keys = deriveKeys(this.eph, eph, th1, this.crypto);
    this.done = true;
    this.eph.fill(0);
    this.eph = undefined;
    const cipher = new ChannelCipher(keys.i2r, keys.r2i, 0, this.crypto);
    if (!this.opts.identity) return { cipher };
    return { finish: { v: 1, sig: toB64(sign(this.opts.identity, finishBytes(th1, sig), this.crypto)) }, cipher };
  }
}

export class ChannelResponder {
  private th1?: Bytes;
  private sigR?: Bytes;
  private keys?: { i2r: Secret; r2i: Secret };
  private initiatorId?: string;
  private verified = false;
  private state: 'new' | 'accepted' | 'done' = 'new';

  constructor(
    private readonly opts: {
      name: string;
      identity: Identity;
      trust: TrustCheck;
      requireMutual: boolean;
      rng: Rng;
      /** The backend of the party this side runs for (backend.choice.ts); the process's when absent. */
      crypto?: CryptoBackend;
    },
    /**
     * `admit`: asked after every check that needs no key (shape, size, trust
     * from the hello alone) and before any public-key work; false refuses the
     * hello BUSY (limits.ts: a flood of bogus hellos can not buy CPU).
     */
    private readonly door: { admit?: () => boolean } = {},
  ) {}

  /** The initiator's Ed25519 key (base64url), once it has proven it; undefined for an anonymous initiator. */
  get peerId(): string | undefined {
    return this.verified ? this.initiatorId : undefined;
  }

  /** Checks the hello against the trust configuration and answers it. Once only. */
  hello(msg: ChannelHello): ChannelAccept {
    if (this.state !== 'new') throw fail('a second hello in one handshake');
    requireVersion(msg, 'hello');
    const from = name(msg);
    const rawId = field(msg, 'id');
    const idBytes = rawId === undefined ? undefined : b64Field(msg, 'id', ED25519_PUBLIC_BYTES);
    const hello: ChannelHello = {
      v: 1,
      from,
      eph: toB64(b64Field(msg, 'eph', X25519_BYTES)),
      nonce: toB64(b64Field(msg, 'nonce', CHANNEL_NONCE_BYTES)),
    };
    if (idBytes) hello.id = toB64(idBytes);
    if (this.opts.requireMutual && hello.id === undefined) throw new CryptoError('UNTRUSTED_PEER', 'this channel requires the initiator to identify itself');
    const verdict = this.opts.trust(hello.id, from);
    if (verdict === false) throw new CryptoError('UNTRUSTED_PEER', `${from} is not trusted here: its key is not in the trust configuration`);
    if (verdict !== true) throw new CryptoError(verdict.code, verdict.message);
    if (this.door.admit && !this.door.admit()) throw new CryptoError('BUSY', 'too many handshakes; retry in a moment');
    const eph = this.opts.rng.bytes(X25519_BYTES);
    countCrypto('x25519.keygen');
    const crypto = this.opts.crypto ?? currentBackend();
    const ephPub = crypto.x25519.publicKey(eph);
    const id = this.opts.identity.signPublic;
    const th1 = transcript1(hello, id, ephPub);
    const sig = sign(this.opts.identity, th1, crypto);
    const keys = deriveKeys(eph, fromB64(hello.eph), th1, crypto);
    eph.fill(0);
    this.initiatorId = hello.id;
    this.th1 = th1;
    this.sigR = sig;
    this.keys = keys;
    this.state = 'accepted';
    return { v: 1, from: this.opts.name, id: toB64(id), eph: toB64(ephPub), sig: toB64(sig) };
  }

  /**
   * Completes the handshake. An initiator that named a key must prove it
   * (a finish signed over the transcript), whether or not mutual
   * authentication is required: a claimed, unproven key is never trusted.
   * Once only: a second cipher from the same keys would reuse nonces.
   */
  finish(msg?: ChannelFinish): ChannelCipher {
    if (this.state === 'new' || !this.keys || !this.th1 || !this.sigR) throw fail('finish before hello');
    if (this.state === 'done') throw fail('this handshake is already complete');
    if (this.initiatorId !== undefined) {
      if (msg === undefined) throw fail('the initiator must prove its key');
      requireVersion(msg, 'finish');
      const sig = b64Field(msg, 'sig', ED25519_SIG_BYTES);
      if (!verifySignature(fromB64(this.initiatorId), finishBytes(this.th1, this.sigR), sig, this.opts.crypto)) {
        throw fail("the initiator's handshake signature is invalid");
      }
      this.verified = true;
    } else if (this.opts.requireMutual) {
      throw new CryptoError('UNTRUSTED_PEER', 'this channel requires the initiator to identify itself');
    }
    this.state = 'done';
    return new ChannelCipher(this.keys.r2i, this.keys.i2r, 1, this.opts.crypto);
  }
}
