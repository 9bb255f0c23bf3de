/**
 * Server <-> SAM channels (protocol.md §2): static Ed25519 identities and
 * ephemeral X25519 keys, then AEAD. Trust is configured, not discovered: the
 * initiator knows the responder's key; the responder checks the initiator's
 * key against its trust list (or, for a terminal, accepts it anonymous: the
 * user then logs in inside the channel).
 *
 *   hello   I -> R  { from, id?, eph, nonce }
 *   accept  R -> I  { from, id, eph, sig_R(th1) }       th1 = H(hello, R id, R eph)
 *   finish  I -> R  { sig_I(H(th1, sig_R)) }            (mutual only)
 *   keys = HKDF(X25519(eph_I, eph_R), salt th1) -> one key per direction
 *
 * These are pure message functions; secure.link.ts runs them over any Link.
 * Channel messages tolerate loss and reordering (the transport may drop and
 * the protocol retries), but never replay: a sliding window refuses a
 * counter seen before.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, encodeFields, equalBytes, fromB64, readU64be, toB64, u32be, u64be, utf8, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import { sign, verifySignature, type Identity } from './identity.ts';
import type { Rng } from './random.ts';
import { Secret } from './secret.ts';

export const CHANNEL_REPLAY_WINDOW = 1024;

export interface ChannelHello {
  v: 1;
  from: string;
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

function str(x: unknown, max = 256): string {
  if (typeof x !== 'string' || x.length > max) throw new CryptoError('HANDSHAKE_FAILED', 'handshake field is missing or too long');
  return x;
}

function helloBytes(h: ChannelHello): Bytes {
  return encodeFields('valmove/v1/chan/hello', h.from, h.id ?? '', fromB64(h.eph), fromB64(h.nonce));
}

function transcript1(h: ChannelHello, rId: string, rEph: string): Bytes {
  return sha256(encodeFields('valmove/v1/chan/accept', helloBytes(h), fromB64(rId), fromB64(rEph)));
}

function finishBytes(th1: Bytes, sigR: string): Bytes {
  return sha256(encodeFields('valmove/v1/chan/finish', th1, fromB64(sigR)));
}

function deriveKeys(shared: Bytes, th1: Bytes): { i2r: Secret; r2i: Secret } {
  const okm = hkdf(sha256, shared, th1, utf8('valmove/v1/chan/keys'), 64);
  return { i2r: Secret.of(okm.subarray(0, 32)), r2i: Secret.of(okm.subarray(32)) };
}

export class ChannelCipher {
  private sendCounter = 0n;
  private highest = -1n;
  private seen = new Set<bigint>();

  constructor(
    private readonly sendKey: Secret,
    private readonly recvKey: Secret,
    private readonly sendDir: number,
  ) {}

  seal(plaintext: Bytes): Bytes {
    const c = this.sendCounter++;
    const head = u64be(c);
    const nonce = concatBytes(u32be(this.sendDir), head);
    return concatBytes(head, chacha20poly1305(this.sendKey.reveal(), nonce, head).encrypt(plaintext));
  }

  /** Opens a message; a failed open changes nothing. */
  open(box: Bytes): Bytes {
    if (box.length < 8 + 16) throw new CryptoError('CHANNEL_TAMPERED', 'channel message is too short');
    const c = readU64be(box);
    if (this.seen.has(c) || c + BigInt(CHANNEL_REPLAY_WINDOW) <= this.highest) {
      throw new CryptoError('CHANNEL_REPLAY', `channel message ${c} was already received or is too old`);
    }
    const head = box.subarray(0, 8);
    const nonce = concatBytes(u32be(1 - this.sendDir), head);
    let plain: Bytes;
    try {
      plain = chacha20poly1305(this.recvKey.reveal(), nonce, head).decrypt(box.subarray(8));
    } catch {
      throw new CryptoError('CHANNEL_TAMPERED', `channel message ${c} fails authentication`);
    }
    this.seen.add(c);
    if (c > this.highest) {
      this.highest = c;
      for (const old of this.seen) if (old + BigInt(CHANNEL_REPLAY_WINDOW) <= c) this.seen.delete(old);
    }
    return plain;
  }
}

export class ChannelInitiator {
  private readonly eph: Bytes;
  private sentHello?: ChannelHello;

  constructor(private readonly opts: { name: string; identity?: Identity; peerSignPublic: Bytes; rng: Rng }) {
    this.eph = opts.rng.bytes(32);
  }

  hello(): ChannelHello {
    this.sentHello = {
      v: 1,
      from: this.opts.name,
      ...(this.opts.identity ? { id: toB64(this.opts.identity.signPublic) } : {}),
      eph: toB64(x25519.getPublicKey(this.eph)),
      nonce: toB64(this.opts.rng.bytes(16)),
    };
    return this.sentHello;
  }

  accept(msg: ChannelAccept): { finish?: ChannelFinish; cipher: ChannelCipher } {
    const hello = this.sentHello;
    if (!hello) throw new CryptoError('HANDSHAKE_FAILED', 'accept before hello');
    const id = str(msg?.id);
    const eph = str(msg?.eph);
    const sig = str(msg?.sig);
    if (!equalBytes(fromB64(id), this.opts.peerSignPublic)) {
      throw new CryptoError('UNTRUSTED_PEER', `${str(msg.from ?? '?', 128)} answered with a key that is not the one configured for it`);
    }
    const th1 = transcript1(hello, id, eph);
    if (!verifySignature(this.opts.peerSignPublic, th1, fromB64(sig))) throw new CryptoError('HANDSHAKE_FAILED', 'the responder\'s handshake signature is invalid');
    const keys = deriveKeys(x25519.getSharedSecret(this.eph, fromB64(eph)), th1);
    const cipher = new ChannelCipher(keys.i2r, keys.r2i, 0);
    if (!this.opts.identity) return { cipher };
    return { finish: { v: 1, sig: toB64(sign(this.opts.identity, finishBytes(th1, sig))) }, cipher };
  }
}

export class ChannelResponder {
  private th1?: Bytes;
  private sigR?: string;
  private keys?: { i2r: Secret; r2i: Secret };
  private initiatorId?: string;
  private verified = false;

  constructor(
    private readonly opts: {
      name: string;
      identity: Identity;
      trust: (initiatorSignPublicB64: string | undefined) => boolean;
      requireMutual: boolean;
      rng: Rng;
    },
  ) {}

  /** The initiator's Ed25519 key (base64url), once it has proven it. */
  get peerId(): string | undefined {
    return this.verified ? this.initiatorId : undefined;
  }

  hello(msg: ChannelHello): ChannelAccept {
    const hello: ChannelHello = { v: 1, from: str(msg?.from, 128), eph: str(msg?.eph), nonce: str(msg?.nonce) };
    if (msg.id !== undefined) hello.id = str(msg.id);
    if (this.opts.requireMutual && hello.id === undefined) throw new CryptoError('UNTRUSTED_PEER', 'this channel requires the initiator to identify itself');
    if (!this.opts.trust(hello.id)) throw new CryptoError('UNTRUSTED_PEER', `${hello.from} is not trusted here: its key is not in the trust configuration`);
    this.initiatorId = hello.id;
    const eph = this.opts.rng.bytes(32);
    const ephPub = toB64(x25519.getPublicKey(eph));
    const id = toB64(this.opts.identity.signPublic);
    const th1 = transcript1(hello, id, ephPub);
    const sig = toB64(sign(this.opts.identity, th1));
    this.th1 = th1;
    this.sigR = sig;
    this.keys = deriveKeys(x25519.getSharedSecret(eph, fromB64(hello.eph)), th1);
    return { v: 1, from: this.opts.name, id, eph: ephPub, sig };
  }

  finish(msg?: ChannelFinish): ChannelCipher {
    if (!this.keys || !this.th1 || !this.sigR) throw new CryptoError('HANDSHAKE_FAILED', 'finish before hello');
    if (this.initiatorId !== undefined) {
      if (!msg) throw new CryptoError('HANDSHAKE_FAILED', 'the initiator must prove its key');
      const ok = verifySignature(fromB64(this.initiatorId), finishBytes(this.th1, this.sigR), fromB64(str(msg.sig)));
      if (!ok) throw new CryptoError('HANDSHAKE_FAILED', 'the initiator\'s handshake signature is invalid');
      this.verified = true;
    } else if (this.opts.requireMutual) {
      throw new CryptoError('UNTRUSTED_PEER', 'this channel requires the initiator to identify itself');
    }
    return new ChannelCipher(this.keys.r2i, this.keys.i2r, 1);
  }
}
