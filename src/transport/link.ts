/**
 * A Link is one connection between two parties, as a WebSocket is: ordered,
 * message-oriented, closable. Parties see only this interface, so the
 * in-memory pipe, the WebSocket transport and the simulator's scheduled
 * network are interchangeable without touching machines or actors.
 */
export interface Link {
  /** For logs and traces: "server->admin-sam". */
  readonly label: string;
  readonly isOpen: boolean;
  send(data: Uint8Array): void;
  onMessage(handler: (data: Uint8Array) => void): void;
  onClose(handler: (reason: string) => void): void;
  /** `code`: a WebSocket close code (CLOSE_POLICY for a peer that broke a rule); links without codes ignore it. */
  close(reason?: string, code?: number): void;
}

/** WebSocket close code for a peer that broke a rule (RFC 6455 §7.4.1, "policy violation"): a refused handshake, a limit. */
export const CLOSE_POLICY = 1008;

/**
 * A link around another (faults, a test's tamperer): everything but `send`
 * goes to the inner link, and the channel's refusal shows through.
 */
export abstract class LinkWrapper implements Link {
  constructor(protected readonly inner: Link) {}

  get label(): string {
    return this.inner.label;
  }

  get isOpen(): boolean {
    return this.inner.isOpen;
  }

  /** The channel's refusal, when the link below is a channel that was refused. */
  get refusal(): { code: string; message: string } | undefined {
    return (this.inner as { refusal?: { code: string; message: string } }).refusal;
  }

  /** The key the peer proved in the channel handshake below, if any (see SecureResponderLink.peerId). */
  get peerId(): string | undefined {
    return (this.inner as { peerId?: string }).peerId;
  }

  abstract send(data: Uint8Array): void;

  onMessage(handler: (data: Uint8Array) => void): void {
    this.inner.onMessage(handler);
  }

  onClose(handler: (reason: string) => void): void {
    this.inner.onClose(handler);
  }

  close(reason?: string, code?: number): void {
    this.inner.close(reason, code);
  }
}

/** Where a link's end sits: the party sending on it, the party at the other end, the link's label. */
export interface LinkSite {
  from: string;
  to: string;
  link: string;
}

/** Sees every message that crosses a link, as bytes. Used by the run recorder and the confidentiality tests. */
export type LinkTap = (record: { link: string; from: string; to: string; bytes: Uint8Array }) => void;

/** What a deferred delivery carries, so a scheduler can order, hold or partition it by link. */
export interface Delivery {
  link: string;
  from: string;
  to: string;
  /** The bytes delivered; absent for a close. */
  bytes?: Uint8Array;
}

/** Delivers a callback later; the default is the event loop, the simulator substitutes its own. */
export interface Scheduler {
  defer(fn: () => void, delivery?: Delivery): void;
}

export const immediateScheduler: Scheduler = {
  defer(fn) {
    setImmediate(fn);
  },
};
