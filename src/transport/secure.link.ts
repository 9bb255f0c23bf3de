/**
 * The channel layer of protocol.md §2: server <-> SAM links are mutually
 * authenticated with static Ed25519 identities and ephemeral X25519 keys,
 * terminal -> server links authenticate the server only (the user logs in
 * inside the channel). It wraps any Link, so the same handshake runs in
 * memory, over WebSocket and in the simulator.
 *
 * Wire form of one message on the underlying link: one tag byte, then
 *   HELLO/ACCEPT/FINISH/REFUSED: UTF-8 JSON of the handshake message;
 *   DATA: the sealed box (counter || AEAD ciphertext).
 */
import {
  ChannelInitiator,
  ChannelResponder,
  CryptoError,
  type ChannelCipher,
  type Identity,
  type Rng,
} from '../crypto/index.ts';
import type { Link } from './link.ts';

const TAG_HELLO = 1;
const TAG_ACCEPT = 2;
const TAG_FINISH = 3;
const TAG_DATA = 4;
const TAG_REFUSED = 5;

/** Messages a side may queue while the handshake runs. */
export const HANDSHAKE_QUEUE_MESSAGES_MAX = 1_000;

const enc = new TextEncoder();
const dec = new TextDecoder();

function frame(tag: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 1);
  out[0] = tag;
  out.set(payload, 1);
  return out;
}

function json(tag: number, value: unknown): Uint8Array {
  return frame(tag, enc.encode(JSON.stringify(value)));
}

function parseJson(payload: Uint8Array): unknown {
  return JSON.parse(dec.decode(payload));
}

export interface SecureLinkEvents {
  /** A message that failed the channel checks was dropped (replay, tamper). No state changed. */
  onReject?: (code: string, message: string) => void;
}

abstract class SecureLinkBase implements Link {
  protected cipher?: ChannelCipher;
  private handlers: Array<(data: Uint8Array) => void> = [];
  private closeHandlers: Array<(reason: string) => void> = [];
  private queued: Uint8Array[] = [];
  private inbox: Uint8Array[] = [];
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  readonly ready: Promise<void>;
  refusal?: { code: string; message: string };

  constructor(
    protected readonly raw: Link,
    protected readonly events: SecureLinkEvents,
  ) {
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    raw.onMessage((data) => this.receive(data));
    raw.onClose((reason) => {
      this.readyReject(new Error(`link closed during handshake: ${reason}`));
      for (const h of this.closeHandlers) h(reason);
    });
  }

  get label(): string {
    return this.raw.label;
  }

  get isOpen(): boolean {
    return this.raw.isOpen;
  }

  send(data: Uint8Array): void {
    if (!this.cipher) {
      if (this.queued.length < HANDSHAKE_QUEUE_MESSAGES_MAX) this.queued.push(new Uint8Array(data));
      return;
    }
    this.raw.send(frame(TAG_DATA, this.cipher.seal(data)));
  }

  onMessage(handler: (data: Uint8Array) => void): void {
    this.handlers.push(handler);
    const pending = this.inbox;
    this.inbox = [];
    for (const d of pending) handler(d);
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandlers.push(handler);
  }

  close(reason?: string): void {
    this.raw.close(reason);
  }

  protected established(cipher: ChannelCipher): void {
    this.cipher = cipher;
    const q = this.queued;
    this.queued = [];
    for (const d of q) this.send(d);
    this.readyResolve();
  }

  protected refuse(code: string, message: string): void {
    this.raw.send(json(TAG_REFUSED, { code, message }));
    this.events.onReject?.(code, message);
    this.raw.close(`${code}: ${message}`);
  }

  protected refused(body: unknown): void {
    const b = body as { code?: unknown; message?: unknown };
    this.refusal = {
      code: typeof b.code === 'string' ? b.code.slice(0, 64) : 'HANDSHAKE_FAILED',
      message: typeof b.message === 'string' ? b.message.slice(0, 256) : 'the peer refused the channel',
    };
    this.readyReject(new Error(`${this.refusal.code}: ${this.refusal.message}`));
    this.raw.close(this.refusal.code);
  }

  private receive(data: Uint8Array): void {
    if (data.length < 1) return;
    const tag = data[0];
    const payload = data.subarray(1);
    if (tag === TAG_DATA) {
      if (!this.cipher) {
        this.events.onReject?.('UNAUTHENTICATED', 'data arrived before the channel handshake finished');
        return;
      }
      let plain: Uint8Array;
      try {
        plain = this.cipher.open(payload);
      } catch (e) {
        const code = e instanceof CryptoError ? e.code : 'CHANNEL_TAMPERED';
        this.events.onReject?.(code, e instanceof Error ? e.message : 'channel message rejected');
        return;
      }
      if (this.handlers.length === 0) this.inbox.push(plain);
      else for (const h of this.handlers) h(plain);
      return;
    }
    let body: unknown;
    try {
      body = parseJson(payload);
    } catch {
      this.refuse('HANDSHAKE_FAILED', 'handshake message is not JSON');
      return;
    }
    if (tag === TAG_REFUSED) {
      this.refused(body);
      return;
    }
    try {
      this.handshake(tag ?? 0, body);
    } catch (e) {
      const code = e instanceof CryptoError ? e.code : 'HANDSHAKE_FAILED';
      const message = e instanceof Error ? e.message : 'handshake failed';
      this.refuse(code, message);
      this.readyReject(new Error(`${code}: ${message}`));
    }
  }

  protected abstract handshake(tag: number, body: unknown): void;
}

/** The connecting side (server toward SAMs; terminal toward server). */
export class SecureInitiatorLink extends SecureLinkBase {
  private readonly initiator: ChannelInitiator;

  constructor(
    raw: Link,
    opts: { name: string; identity?: Identity; peerSignPublic: Uint8Array; rng: Rng },
    events: SecureLinkEvents = {},
  ) {
    super(raw, events);
    this.initiator = new ChannelInitiator(opts);
    raw.send(json(TAG_HELLO, this.initiator.hello()));
  }

  protected handshake(tag: number, body: unknown): void {
    if (tag !== TAG_ACCEPT || this.cipher) throw new CryptoError('HANDSHAKE_FAILED', `unexpected handshake message (tag ${tag})`);
    const { finish, cipher } = this.initiator.accept(body as never);
    if (finish) this.raw.send(json(TAG_FINISH, finish));
    this.established(cipher);
  }
}

/** The listening side (SAMs toward the server; server toward terminals). */
export class SecureResponderLink extends SecureLinkBase {
  private readonly responder: ChannelResponder;
  private accepted = false;

  constructor(
    raw: Link,
    private readonly opts: {
      name: string;
      identity: Identity;
      trust: (initiatorSignPublicB64: string | undefined) => boolean;
      requireMutual: boolean;
      rng: Rng;
    },
    events: SecureLinkEvents = {},
  ) {
    super(raw, events);
    this.responder = new ChannelResponder(opts);
  }

  /** The initiator's Ed25519 public key (base64url), once the handshake has passed. */
  get peerId(): string | undefined {
    return this.responder.peerId;
  }

  /** The name the initiator gave in its hello (not authenticated for anonymous initiators). */
  peerName?: string;

  protected handshake(tag: number, body: unknown): void {
    if (tag === TAG_HELLO && !this.accepted) {
      const hello = body as { from?: unknown };
      this.peerName = typeof hello.from === 'string' ? hello.from.slice(0, 128) : undefined;
      const accept = this.responder.hello(body as never);
      this.accepted = true;
      this.raw.send(json(TAG_ACCEPT, accept));
      if (!this.opts.requireMutual) this.established(this.responder.finish());
      return;
    }
    if (tag === TAG_FINISH && this.accepted && !this.cipher) {
      this.established(this.responder.finish(body as never));
      return;
    }
    throw new CryptoError('HANDSHAKE_FAILED', `unexpected handshake message (tag ${tag})`);
  }
}
