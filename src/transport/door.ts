/**
 * The door that enforces limits.ts: one per process. It counts links (all,
 * per address, and those still in their handshake) and answers an upgrade
 * beyond a cap; it hands each channel its deadline, hello size and the
 * route's handshake bucket; it puts stranger-facing links behind a message
 * rate; and it counts and logs every refusal without flooding the log.
 * Time comes from the injected Clock: the same door runs in memory, over
 * WebSocket and under a virtual clock.
 */
import type { Clock } from '../clock.ts';
import type { LogFields, Logger } from '../log.ts';
import { DEFAULT_LIMITS, REFUSAL_LOG_INTERVAL_MS, REFUSAL_LOG_LINES_MAX, TRUSTED_ROUTES, type LimitName, type Limits } from './limits.ts';
import { CLOSE_POLICY, LinkWrapper, type Link } from './link.ts';

/** A token bucket: `perS` tokens a second, at most `burst` saved up; starts full. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly perS: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {
    if (!(perS > 0) || !(burst >= 1)) throw new Error(`a token bucket needs a positive rate and a burst of at least 1 (got ${perS}/s, ${burst})`);
    this.tokens = burst;
    this.at = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const t = this.now();
    // A clock that steps back adds nothing (and takes nothing away).
    if (t > this.at) this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) * this.perS) / 1000);
    this.at = Math.max(this.at, t);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Logs at most REFUSAL_LOG_LINES_MAX lines of a kind per interval, then one
 * line with how many were left out. Kinds are a fixed set (limit names), so
 * the map stays small whatever the peers do.
 */
export class LogThrottle {
  private readonly windows = new Map<string, { start: number; lines: number; suppressed: number; cancel?: () => void }>();

  constructor(
    private readonly log: Logger | undefined,
    private readonly clock: Clock,
  ) {}

  warn(kind: string, msg: string, fields: LogFields): void {
    if (!this.log) return;
    const now = this.clock.now();
    let w = this.windows.get(kind);
    if (!w || now - w.start >= REFUSAL_LOG_INTERVAL_MS) {
      if (w) this.summarise(kind, w);
      w = { start: now, lines: 0, suppressed: 0 };
      this.windows.set(kind, w);
    }
    if (w.lines < REFUSAL_LOG_LINES_MAX) {
      w.lines++;
      this.log.warn(msg, fields);
      return;
    }
    w.suppressed++;
    if (!w.cancel) {
      const win = w;
      win.cancel = this.clock.schedule(win.start + REFUSAL_LOG_INTERVAL_MS, () => {
        win.cancel = undefined;
        if (this.windows.get(kind) === win) {
          this.summarise(kind, win);
          this.windows.delete(kind);
        }
      });
    }
  }

  private summarise(kind: string, w: { suppressed: number; cancel?: () => void }): void {
    w.cancel?.();
    w.cancel = undefined;
    if (w.suppressed > 0) this.log?.warn('more refusals, not logged one by one', { kind, suppressed: w.suppressed, intervalMs: REFUSAL_LOG_INTERVAL_MS });
    w.suppressed = 0;
  }

  /** Writes what is pending and cancels the timers (at shutdown). */
  close(): void {
    for (const [kind, w] of this.windows) this.summarise(kind, w);
    this.windows.clear();
  }
}

/** What a channel responder needs from the door: a deadline, a size limit, the handshake bucket, and where to report. */
export interface ResponderLimits {
  clock: Clock;
  handshakeMs: number;
  helloBytesMax: number;
  /** Takes a token from the route's handshake bucket; false: refuse the hello BUSY. */
  admitHandshake(): boolean;
  refused(limit: LimitName, message: string): void;
}

/** One admitted WebSocket: pending until its route says the handshake passed, counted until its socket closes. */
export interface Admission {
  readonly path: string;
  readonly address: string;
  /** The channel's limits for this link (deadline, hello size, handshake bucket). */
  readonly responder: ResponderLimits;
  /** The handshake passed (or the route has none): no longer counted as pending. Idempotent. */
  established(): void;
  /** The socket closed. Idempotent. */
  release(): void;
}

export interface Refusal {
  limit: LimitName;
  /** A short sentence for the 503 body: names the limit. */
  message: string;
}

export interface DoorOptions {
  limits?: Partial<Limits>;
  clock: Clock;
  log?: Logger;
  /** Counts a refusal (the process wires valmove_refused_total). */
  count?: (limit: LimitName) => void;
}

/** One process's door: its link counts, its handshake buckets, and every refusal counted and logged. */
export class Door {
  readonly limits: Readonly<Limits>;
  readonly log: LogThrottle;
  private links = 0;
  private pending = 0;
  private readonly byAddress = new Map<string, { links: number; pending: number }>();
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(private readonly opts: DoorOptions) {
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...opts.limits });
    this.log = new LogThrottle(opts.log, opts.clock);
  }

  /** Links held and pending, for an operator's /healthz. */
  get counts(): { links: number; pending: number; addresses: number } {
    return { links: this.links, pending: this.pending, addresses: this.byAddress.size };
  }

  refused(limit: LimitName, message: string, fields: LogFields = {}): void {
    this.opts.count?.(limit);
    this.log.warn(limit, 'refused at the door', { limit, reason: message, ...fields });
  }

  /** Admits a WebSocket upgrade from `address` on `path`, or says which limit refuses it (nothing is counted then). */
  admit(path: string, address: string): Admission | Refusal {
    const l = this.limits;
    const mine = this.byAddress.get(address) ?? { links: 0, pending: 0 };
    const refusal: Refusal | undefined =
      this.links >= l.linksMax
        ? { limit: 'links', message: `too many connections (limit ${l.linksMax})` }
        : mine.links >= l.linksPerAddressMax
          ? { limit: 'links_per_address', message: `too many connections from ${address} (limit ${l.linksPerAddressMax})` }
          : this.pending >= l.pendingHandshakesMax
            ? { limit: 'pending_handshakes', message: `too many connections in their handshake (limit ${l.pendingHandshakesMax})` }
            : mine.pending >= l.pendingPerAddressMax
              ? { limit: 'pending_per_address', message: `too many connections in their handshake from ${address} (limit ${l.pendingPerAddressMax})` }
              : undefined;
    if (refusal) {
      this.refused(refusal.limit, refusal.message, { path, remote: address });
      return refusal;
    }
    this.links++;
    this.pending++;
    mine.links++;
    mine.pending++;
    this.byAddress.set(address, mine);
    let pending = true;
    let held = true;
    const done = () => {
      if (!pending) return;
      pending = false;
      this.pending--;
      mine.pending--;
    };
    return {
      path,
      address,
      responder: this.responder(path),
      established: done,
      release: () => {
        if (!held) return;
        done();
        held = false;
        this.links--;
        mine.links--;
        if (mine.links === 0) this.byAddress.delete(address);
      },
    };
  }

  /** The channel limits of a route (also for links that did not come through `admit`, such as in-memory ones). */
  responder(path: string): ResponderLimits {
    const l = this.limits;
    let bucket = this.buckets.get(path);
    if (!bucket) {
      bucket = new TokenBucket(l.handshakesPerS, l.handshakeBurst, () => this.opts.clock.now());
      this.buckets.set(path, bucket);
    }
    const b = bucket;
    return {
      clock: this.opts.clock,
      handshakeMs: l.handshakeMs,
      helloBytesMax: l.helloBytesMax,
      admitHandshake: () => b.take(),
      refused: (limit, message) => this.refused(limit, message, { path }),
    };
  }

  /** The link as its route should see it: rate-limited on stranger-facing routes, as is on trusted ones. */
  gate(link: Link, path: string): Link {
    if (TRUSTED_ROUTES.has(path)) return link;
    return new RateLimitedLink(link, this.limits, this.opts.clock, (limit, message) => this.refused(limit, message, { path, link: link.label }));
  }

  close(): void {
    this.log.close();
  }
}

/**
 * A link whose incoming messages pass a token bucket: over the rate they are
 * dropped (before any decryption or parsing), and a link that keeps
 * exceeding it is closed with 1008. Sending is not limited.
 */
export class RateLimitedLink extends LinkWrapper {
  private readonly bucket: TokenBucket;
  private readonly handlers: Array<(data: Uint8Array) => void> = [];
  private listening = false;
  private drops = 0;
  private windowStart: number;
  dropped = 0;

  constructor(
    inner: Link,
    private readonly limits: Pick<Limits, 'messagesPerS' | 'messageBurst' | 'messageDropsMax' | 'messageDropsWindowMs'>,
    private readonly clock: Clock,
    private readonly refused: (limit: LimitName, message: string) => void,
  ) {
    super(inner);
    this.bucket = new TokenBucket(limits.messagesPerS, limits.messageBurst, () => clock.now());
    this.windowStart = clock.now();
  }

  send(data: Uint8Array): void {
    this.inner.send(data);
  }

  override onMessage(handler: (data: Uint8Array) => void): void {
    this.handlers.push(handler);
    if (this.listening) return;
    // One handler below, however many above: a message takes one token, not one per handler.
    this.listening = true;
    this.inner.onMessage((d) => this.receive(d));
  }

  private receive(data: Uint8Array): void {
    if (this.bucket.take()) {
      for (const h of this.handlers) h(data);
      return;
    }
    this.dropped++;
    const now = this.clock.now();
    if (now - this.windowStart >= this.limits.messageDropsWindowMs) {
      this.windowStart = now;
      this.drops = 0;
    }
    this.drops++;
    this.refused('messages_per_s', `a message over ${this.limits.messagesPerS}/s (burst ${this.limits.messageBurst}) was dropped`);
    if (this.drops === this.limits.messageDropsMax + 1) {
      const why = `more than ${this.limits.messageDropsMax} messages over ${this.limits.messagesPerS}/s within ${this.limits.messageDropsWindowMs} ms`;
      this.refused('message_drops', why);
      this.inner.close(why, CLOSE_POLICY);
    }
  }
}
