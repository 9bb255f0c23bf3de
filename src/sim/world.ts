/**
 * The simulator's world (simulation.md): a virtual clock and a network whose
 * in-flight messages sit in a pool until the simulator delivers them. Nothing
 * here reads the wall clock, timers or the OS random source: the clock moves
 * only when the simulator advances it, and every choice comes from the
 * seeded generator handed in.
 */
import type { Clock } from '../clock.ts';
import type { SeededRng } from '../crypto/index.ts';
import type { Delivery, Scheduler } from '../transport/link.ts';

/** Virtual time starts here (a plausible epoch in ms, so deadlines look like real ones in traces). */
export const SIM_EPOCH_MS = 1_700_000_000_000;

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/** Virtual milliseconds; timers fire only when the simulator advances the clock to them. */
export class VirtualClock implements Clock {
  private t = SIM_EPOCH_MS;
  private seq = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  schedule(atMs: number, fn: () => void): () => void {
    // Whole milliseconds, as Date.now() gives: messages carry times as integers.
    const timer: Timer = { at: Math.max(Math.ceil(atMs), this.t), seq: this.seq++, fn, live: true };
    // Sorted by (at, seq): equal times fire in the order they were set.
    let i = this.timers.length;
    while (i > 0 && this.timers[i - 1]!.at > timer.at) i--;
    this.timers.splice(i, 0, timer);
    return () => {
      timer.live = false;
    };
  }

  /** When the earliest live timer is due, if any. */
  nextAt(): number | undefined {
    while (this.timers.length > 0 && !this.timers[0]!.live) this.timers.shift();
    return this.timers[0]?.at;
  }

  advanceTo(atMs: number): void {
    if (atMs > this.t) this.t = atMs;
  }

  /** Fires the earliest live timer if it is due now; false when none is. */
  fireNext(): boolean {
    const at = this.nextAt();
    if (at === undefined || at > this.t) return false;
    const timer = this.timers.shift()!;
    timer.live = false;
    timer.fn();
    return true;
  }

  get pending(): number {
    return this.timers.filter((t) => t.live).length;
  }
}

interface InFlight {
  at: number;
  seq: number;
  fn: () => void;
  delivery: Delivery;
}

/** A partition: no message crosses between these two parties until `until`. */
export interface Partition {
  a: string;
  b: string;
  until: number;
}

/**
 * The network: per link a FIFO of in-flight messages (a link keeps its order,
 * as a socket does; losing, repeating and reordering envelopes is the fault
 * layer's job, above the channel). Each message gets a latency drawn from
 * the generator; the next delivery is the earliest head of a link that no
 * partition holds.
 */
export class SimNetwork implements Scheduler {
  private readonly links = new Map<string, InFlight[]>();
  private seq = 0;
  readonly partitions: Partition[] = [];
  delivered = 0;

  constructor(
    private readonly clock: VirtualClock,
    private readonly rng: SeededRng,
    /** Upper bound of a message's latency, in virtual ms. */
    private readonly latencyMaxMs: number,
  ) {}

  defer(fn: () => void, delivery?: Delivery): void {
    const d = delivery ?? { link: 'local', from: 'local', to: 'local' };
    let q = this.links.get(d.link);
    if (!q) this.links.set(d.link, (q = []));
    const latency = Math.floor(this.rng.nextFloat() * (this.latencyMaxMs + 1));
    const tail = q[q.length - 1];
    const at = Math.max(this.clock.now() + latency, tail?.at ?? 0);
    q.push({ at, seq: this.seq++, fn, delivery: d });
  }

  private held(d: Delivery): boolean {
    const now = this.clock.now();
    return this.partitions.some((p) => p.until > now && ((p.a === d.from && p.b === d.to) || (p.a === d.to && p.b === d.from)));
  }

  private head(): InFlight | undefined {
    let best: InFlight | undefined;
    for (const q of this.links.values()) {
      const h = q[0];
      if (!h || this.held(h.delivery)) continue;
      if (!best || h.at < best.at || (h.at === best.at && h.seq < best.seq)) best = h;
    }
    return best;
  }

  /** When the next deliverable message is due, if any. */
  nextAt(): number | undefined {
    return this.head()?.at;
  }

  /** Takes the next deliverable message off its link (the caller runs it). */
  take(): InFlight | undefined {
    const h = this.head();
    if (!h) return undefined;
    this.links.get(h.delivery.link)!.shift();
    this.delivered++;
    return h;
  }

  /** Ends partitions that are over (and, with `all`, every one). */
  heal(all = false): void {
    const now = this.clock.now();
    for (let i = this.partitions.length - 1; i >= 0; i--) if (all || this.partitions[i]!.until <= now) this.partitions.splice(i, 1);
  }

  get inFlight(): number {
    let n = 0;
    for (const q of this.links.values()) n += q.length;
    return n;
  }
}
