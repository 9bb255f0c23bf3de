/**
 * Message faults for the simulator, demos and `valmove start --faults`: a Link
 * wrapper that loses, repeats, delays or reorders what is sent through it,
 * drawing every choice from the injected random source (a seed replays the
 * same faults). It sits above the channel layer, so it loses envelopes, not
 * handshake bytes, as a network loses packets under TLS.
 */
import type { Clock } from '../clock.ts';
import type { Rng } from '../crypto/index.ts';
import { LinkWrapper, type Link } from './link.ts';

export interface FaultPolicy {
  /** Probability a message is lost. */
  drop?: number;
  /** Probability a message is delivered twice. */
  duplicate?: number;
  /** Probability a message is held back and sent after the next one (or after reorderMaxMs). */
  reorder?: number;
  /** Probability a message is delayed by up to delayMaxMs. */
  delay?: number;
  delayMaxMs?: number;
  /**
   * Asked each time a fault is drawn; false spares this message (the draw is
   * still made, so the random stream stays aligned). The simulator numbers
   * faults with it and switches single ones off to shrink a failing run.
   */
  strike?: (kind: 'drop' | 'duplicate' | 'reorder' | 'delay', link: string) => boolean;
}

export interface FaultCounts {
  sent: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  reordered: number;
}

/** How long a held-back (reordered) message waits for a successor before it goes anyway. */
export const REORDER_HOLD_MS_MAX = 50;

/** Parses "drop=0.1,dup=0.05,reorder=0.1,delay=0.2,delayMax=40" (the --faults flag). */
export function parseFaults(spec: string): FaultPolicy {
  const out: FaultPolicy = {};
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (!k || v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`--faults: "${part}" is not name=number`);
    const rate = (x: number) => {
      if (x > 1) throw new Error(`--faults: ${k} is a probability (0 to 1), got ${x}`);
      return x;
    };
    switch (k) {
      case 'drop':
        out.drop = rate(n);
        break;
      case 'dup':
      case 'duplicate':
        out.duplicate = rate(n);
        break;
      case 'reorder':
        out.reorder = rate(n);
        break;
      case 'delay':
        out.delay = rate(n);
        break;
      case 'delayMax':
        out.delayMaxMs = n;
        break;
      default:
        throw new Error(`--faults: unknown fault "${k}" (drop, dup, reorder, delay, delayMax)`);
    }
  }
  return out;
}

export class FaultyLink extends LinkWrapper {
  readonly counts: FaultCounts = { sent: 0, dropped: 0, duplicated: 0, delayed: 0, reordered: 0 };
  private held: { data: Uint8Array; cancel: () => void } | null = null;
  private readonly timers = new Set<() => void>();

  constructor(
    inner: Link,
    private readonly rng: Rng,
    private readonly clock: Clock,
    private readonly policy: () => FaultPolicy | null,
  ) {
    super(inner);
  }

  private chance(p: number | undefined, kind?: 'drop' | 'duplicate' | 'reorder' | 'delay', policy?: FaultPolicy): boolean {
    if (!p) return false;
    const b = this.rng.bytes(4);
    const hit = ((b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0) / 2 ** 32 < p;
    return hit && (!kind || !policy?.strike || policy.strike(kind, this.label));
  }

  private later(ms: number, fn: () => void): () => void {
    let cancel: () => void = () => {};
    cancel = this.clock.schedule(this.clock.now() + ms, () => {
      this.timers.delete(cancel);
      fn();
    });
    this.timers.add(cancel);
    return cancel;
  }

  private deliver(data: Uint8Array): void {
    this.counts.sent++;
    this.inner.send(data);
    const held = this.held;
    if (held) {
      // The held-back message goes right after this one: they arrive swapped.
      this.held = null;
      held.cancel();
      this.inner.send(held.data);
    }
  }

  send(data: Uint8Array): void {
    const p = this.policy();
    if (!p) return this.deliver(data);
    if (this.chance(p.drop, 'drop', p)) {
      this.counts.dropped++;
      return;
    }
    const copies = this.chance(p.duplicate, 'duplicate', p) ? 2 : 1;
    if (copies === 2) this.counts.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (!this.held && this.chance(p.reorder, 'reorder', p)) {
        this.counts.reordered++;
        const copy = new Uint8Array(data);
        const cancel = this.later(REORDER_HOLD_MS_MAX, () => {
          if (this.held?.data === copy) {
            this.held = null;
            this.inner.send(copy);
          }
        });
        this.held = { data: copy, cancel };
        continue;
      }
      if (this.chance(p.delay, 'delay', p)) {
        this.counts.delayed++;
        const b = this.rng.bytes(2);
        const ms = Math.floor(((b[0]! | (b[1]! << 8)) / 65536) * (p.delayMaxMs ?? 50));
        const copy = new Uint8Array(data);
        this.later(ms, () => this.inner.send(copy));
        continue;
      }
      this.deliver(data);
    }
  }

  override close(reason?: string, code?: number): void {
    this.flush();
    super.close(reason, code);
  }

  /** Drops what is held back or delayed (at teardown). */
  flush(): void {
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    this.held = null;
  }
}
