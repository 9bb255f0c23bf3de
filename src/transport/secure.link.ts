/**
 * The channel layer of protocol.md §2: server <-> SAM links are mutually
 * authenticated with static Ed25519 identities and ephemeral X25519 keys,
 * terminal -> server links authenticate the server only (the user logs in
 * inside the channel). It wraps any Link, so the same handshake runs in
 * memory, over WebSocket and in the simulator.
 *
 * Wire form of one message on the underlying link:
 *   handshake: UTF-8 JSON `{"chan":"hello"|"accept"|"finish"|"refused", ...}`
 *   data:      the byte 0x04, then the sealed box (counter || AEAD ciphertext)
 * A JSON message that is not a handshake (say, an envelope sent without one)
 * is answered with an `error` envelope, UNAUTHENTICATED, in the clear: the
 * peer learns what is wrong and nothing else happens.
 */
import {
  ChannelInitiator,
  ChannelResponder,
  CryptoError,
  type ChannelCipher,
  type CryptoBackend,
  type Identity,
  type Rng,
  type TrustCheck,
} from '../crypto/index.ts';
import type { ErrorCode } from '../protocol/errors.ts';
import { CLOSE_POLICY, type Link } from './link.ts';
import type { ResponderLimits } from './door.ts';
import { HELLO_BYTES_MAX } from './limits.ts';
import { attributeTo } from '../metrics/counters.ts';

const TAG_DATA = 4;
const JSON_OPEN = 0x7b; // '{'

type ChanKind = 'hello' | 'accept' | 'finish' | 'refused';

/** Messages a side may queue while the handshake runs. */
export const HANDSHAKE_QUEUE_MESSAGES_MAX = 1_000;
/** Messages refused before the handshake after which the link is closed (a peer that does not speak the protocol). */
export const PRE_HANDSHAKE_REFUSALS_MAX = 16;

const enc = new TextEncoder();
const dec = new TextDecoder();

function data(box: Uint8Array): Uint8Array {
  const out = new Uint8Array(box.length + 1);
  out[0] = TAG_DATA;
  out.set(box, 1);
  return out;
}

function chan(kind: ChanKind, value: object): Uint8Array {
  return enc.encode(JSON.stringify({ chan: kind, ...value }));
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
  protected readyReject!: (e: Error) => void;
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

  send(bytes: Uint8Array): void {
    if (!this.cipher) {
      if (this.queued.length < HANDSHAKE_QUEUE_MESSAGES_MAX) this.queued.push(new Uint8Array(bytes));
      return;
    }
    const cipher = this.cipher;
    this.raw.send(data(attributeTo(this.selfName, () => cipher.seal(bytes))));
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

  close(reason?: string, code?: number): void {
    this.raw.close(reason, code);
  }

  protected established(cipher: ChannelCipher): void {
    this.cipher = cipher;
    const q = this.queued;
    this.queued = [];
    for (const d of q) this.send(d);
    this.readyResolve();
  }

  protected refuse(code: ErrorCode, message: string): void {
    this.raw.send(chan('refused', { code, message }));
    this.events.onReject?.(code, message);
    this.raw.close(`${code}: ${message}`, CLOSE_POLICY);
  }

  /** Largest JSON message before the channel is up, checked before it is parsed (limits.ts). */
  protected handshakeBytesMax = HELLO_BYTES_MAX;

  /** A handshake-time message over handshakeBytesMax: refused unparsed. */
  protected tooLarge(bytes: number): void {
    const message = `a message before the channel is up is at most ${this.handshakeBytesMax} bytes; this one is ${bytes}`;
    // Rejected first: closing the link would reject it as "closed during handshake".
    this.readyReject(new Error(`TOO_LARGE: ${message}`));
    this.refuse('TOO_LARGE', message);
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

  private preHandshakeRefusals = 0;

  /** Answers a non-handshake JSON message (an envelope sent in the clear) with an error envelope. */
  private refuseUnauthenticated(body: unknown): void {
    const b = (body ?? {}) as { id?: unknown; from?: unknown };
    const name = /^[A-Za-z0-9._:/@+#-]{1,128}$/;
    const reply = {
      v: 1,
      id: `${this.selfName}#pre${++this.preHandshakeRefusals}`,
      ...(typeof b.id === 'string' && name.test(b.id) ? { corr: b.id } : {}),
      from: this.selfName,
      to: typeof b.from === 'string' && name.test(b.from) ? b.from : 'unknown',
      type: 'error',
      body: {
        code: this.cipher ? 'BAD_ENVELOPE' : 'UNAUTHENTICATED',
        message: this.cipher
          ? 'after the handshake every message must be a sealed channel message'
          : 'no channel yet: complete the channel handshake (docs/wire.md, Channels) before sending envelopes',
      },
    };
    this.events.onReject?.('UNAUTHENTICATED', 'a message arrived before the channel handshake');
    this.raw.send(enc.encode(JSON.stringify(reply)));
    if (this.preHandshakeRefusals >= PRE_HANDSHAKE_REFUSALS_MAX) this.raw.close('too many messages without a channel');
  }

  private receive(bytes: Uint8Array): void {
    if (bytes.length < 1) return;
    if (bytes[0] === TAG_DATA) {
      if (!this.cipher) {
        this.refuseUnauthenticated(undefined);
        return;
      }
      let plain: Uint8Array;
      const cipher = this.cipher;
      try {
        plain = attributeTo(this.selfName, () => cipher.open(bytes.subarray(1)));
      } catch (e) {
        const code = e instanceof CryptoError ? e.code : 'CHANNEL_TAMPERED';
        this.events.onReject?.(code, e instanceof Error ? e.message : 'channel message rejected');
        return;
      }
      if (this.handlers.length === 0) this.inbox.push(plain);
      else for (const h of this.handlers) h(plain);
      return;
    }
    if (!this.cipher && bytes[0] === JSON_OPEN && bytes.length > this.handshakeBytesMax) {
      this.tooLarge(bytes.length);
      return;
    }
    let body: { chan?: unknown } | undefined;
    try {
      body = bytes[0] === JSON_OPEN ? (JSON.parse(dec.decode(bytes)) as { chan?: unknown }) : undefined;
    } catch {
      body = undefined;
    }
    if (!body || typeof body !== 'object') {
      // Neither a channel message nor JSON: say so, in an envelope the peer can read.
      this.refuseUnauthenticated(undefined);
      return;
    }
    if (body.chan === undefined) {
      this.refuseUnauthenticated(body);
      return;
    }
    if (body.chan === 'refused') {
      this.refused(body);
      return;
    }
    try {
      // The handshake's public-key work is this side's (the counters charge it to the party by its name).
      attributeTo(this.selfName, () => this.handshake(String(body.chan), body));
    } catch (e) {
      const code = e instanceof CryptoError ? e.code : 'HANDSHAKE_FAILED';
      const message = e instanceof Error ? e.message : 'handshake failed';
      this.refuse(code, message);
      this.readyReject(new Error(`${code}: ${message}`));
    }
  }

  protected abstract handshake(kind: string, body: unknown): void;

  /** The name this side gives itself in handshakes and pre-handshake errors. */
  protected abstract get selfName(): string;
}

/** The connecting side (server toward SAMs; terminal toward server). */
export class SecureInitiatorLink extends SecureLinkBase {
  private readonly initiator: ChannelInitiator;

  /** `crypto`: the backend of the party this end belongs to (backend.choice.ts); the process's when absent. */
  constructor(
    raw: Link,
    opts: { name: string; identity?: Identity; peerSignPublic: Uint8Array | readonly Uint8Array[]; rng: Rng; crypto?: CryptoBackend },
    events: SecureLinkEvents = {},
  ) {
    super(raw, events);
    this.name = opts.name;
    this.initiator = new ChannelInitiator(opts);
    raw.send(chan('hello', this.initiator.hello()));
  }

  private readonly name: string;
  protected get selfName(): string {
    return this.name;
  }

  protected handshake(kind: string, body: unknown): void {
    if (kind !== 'accept' || this.cipher) throw new CryptoError('HANDSHAKE_FAILED', `unexpected handshake message "${kind.slice(0, 16)}"`);
    const { finish, cipher } = this.initiator.accept(body as never);
    if (finish) this.raw.send(chan('finish', finish));
    this.established(cipher);
  }
}

/** The listening side (SAMs toward the server; server toward terminals). */
export class SecureResponderLink extends SecureLinkBase {
  private readonly responder: ChannelResponder;
  private accepted = false;
  private cancelDeadline?: () => void;

  constructor(
    raw: Link,
    private readonly opts: {
      name: string;
      identity: Identity;
      trust: TrustCheck;
      requireMutual: boolean;
      rng: Rng;
      crypto?: CryptoBackend;
    },
    events: SecureLinkEvents = {},
    /** The door's limits (door.ts): a deadline, the hello size, the handshake bucket. None: no deadline, no bucket. */
    private readonly limits?: ResponderLimits,
  ) {
    super(raw, events);
    this.responder = new ChannelResponder(opts, limits ? { admit: () => this.admitHandshake(limits) } : {});
    if (limits) {
      this.handshakeBytesMax = limits.helloBytesMax;
      this.cancelDeadline = limits.clock.schedule(limits.clock.now() + limits.handshakeMs, () => this.deadlinePassed(limits));
      raw.onClose(() => this.cancelDeadline?.());
    }
  }

  /** Just before the public-key work: a token from the route's handshake bucket, or BUSY. */
  private admitHandshake(limits: ResponderLimits): boolean {
    if (limits.admitHandshake()) return true;
    limits.refused('handshakes_per_s', 'too many handshakes; retry in a moment');
    return false;
  }

  private deadlinePassed(limits: ResponderLimits): void {
    this.cancelDeadline = undefined;
    if (this.cipher || !this.raw.isOpen) return;
    const message = `no channel within ${limits.handshakeMs} ms: complete the channel handshake (docs/wire.md, Channels) right after connecting`;
    limits.refused('handshake_timeout', message);
    this.readyReject(new Error(`HANDSHAKE_TIMEOUT: ${message}`));
    this.refuse('HANDSHAKE_TIMEOUT', message);
  }

  protected override tooLarge(bytes: number): void {
    this.limits?.refused('hello_bytes', `a handshake message of ${bytes} bytes (limit ${this.handshakeBytesMax})`);
    super.tooLarge(bytes);
  }

  protected override established(cipher: ChannelCipher): void {
    this.cancelDeadline?.();
    this.cancelDeadline = undefined;
    super.established(cipher);
  }

  /** The initiator's Ed25519 public key (base64url), once the handshake has passed. */
  get peerId(): string | undefined {
    return this.responder.peerId;
  }

  /** The name the initiator gave in its hello (not authenticated for anonymous initiators). */
  peerName?: string;

  protected get selfName(): string {
    return this.opts.name;
  }

  protected handshake(kind: string, body: unknown): void {
    if (kind === 'hello' && !this.accepted) {
      const hello = body as { from?: unknown };
      this.peerName = typeof hello.from === 'string' ? hello.from.slice(0, 128) : undefined;
      const accept = this.responder.hello(body as never);
      this.accepted = true;
      this.raw.send(chan('accept', accept));
      if (!this.opts.requireMutual) {
        this.established(this.responder.finish());
        this.onEstablished?.(this);
      }
      return;
    }
    if (kind === 'finish' && this.accepted && !this.cipher) {
      this.established(this.responder.finish(body as never));
      this.onEstablished?.(this);
      return;
    }
    throw new CryptoError('HANDSHAKE_FAILED', `unexpected handshake message "${kind.slice(0, 16)}"`);
  }

  /** Called when the channel is established (the initiator's name and key are then known). */
  onEstablished?: (link: SecureResponderLink) => void;

  /**
   * A responder asked for nothing, so an initiator's "refused" is only a
   * close: no refusal is kept, under a link name the initiator chose (issue 16).
   */
  protected override refused(_body: unknown): void {
    this.raw.close('the initiator refused the channel');
  }
}
