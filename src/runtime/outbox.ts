/**
 * The outbox: the requests a party sent and has no answer to yet. Each is
 * written in the turn that sends it (persist, then speak) and sent again
 * until it is answered: on a backoff up to the cap, and at once when its
 * peer's link comes back. The receiver answers a repeat from its inbox.
 *
 * The retransmission schedule is derived from the durable outbox, so it
 * survives a restart. Request types a party keeps off disk (a login proof,
 * which would log in whoever read the file) live in RAM only: sent again
 * while the party runs, lost with it.
 */
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { Timing } from '../timing.ts';
import type { OutMessage } from './types.ts';

export interface OutboxDeps {
  store: PartyStore;
  clock: Clock;
  timing: Timing;
  log: Logger;
  /** Sends a message now (on its link, if open). */
  transmit(o: OutMessage): void;
  /** Request types never written to disk. */
  keptOffDisk(type: string): boolean;
  /** The party stopped: nothing is sent again. */
  stopped(): boolean;
  /** A request was sent again, unanswered (valmove_requests_resent_total). Optional. */
  resent?(): void;
}

/** What a failed commit puts back: the requests kept in RAM as they were before the batch. */
export type RamOutbox = ReadonlyMap<string, OutMessage> | undefined;

/** Retransmission attempts after which the delay stops doubling (it is at its cap long before). */
const BACKOFF_DOUBLINGS_MAX = 20;

export class Outbox {
  private readonly inRam = new Map<string, OutMessage>();
  private readonly timers = new Map<string, () => void>();
  /**
   * Answered requests still on disk, by the actor whose next written snapshot removes them (settleLater): an
   * answer its actor took in RAM only. Lost with RAM, they are sent again after a restart, and answered again.
   */
  private readonly settled = new Map<string, string>();
  private readonly settledBy = new Map<string, string[]>();

  constructor(private readonly deps: OutboxDeps) {}

  /** A request this party sent and has no answer to yet, on disk or (kept off disk) in RAM. */
  pending(id: string): OutMessage | undefined {
    if (this.settled.has(id)) return undefined;
    return this.inRam.get(id) ?? this.deps.store.outbox.get(id);
  }

  /** Whether the pending request `id` is one kept off disk, in RAM only (a login proof). No store read: it is in RAM. */
  isKeptInRam(id: string): boolean {
    return this.inRam.has(id);
  }

  /**
   * An answered request whose answer moved only `actor`, in RAM (engine.ts, an absorbed answer): it is
   * no longer sent again, and leaves the disk with the actor's next written snapshot (forgetSettledOf).
   */
  settleLater(id: string, actor: string): void {
    this.cancel(id);
    this.settled.set(id, actor);
    const ids = this.settledBy.get(actor);
    if (ids) ids.push(id);
    else this.settledBy.set(actor, [id]);
  }

  /** Removes from disk the requests settled for `actor` (inside the transaction that writes its snapshot). */
  forgetSettledOf(actor: string): void {
    const ids = this.settledBy.get(actor);
    if (!ids) return;
    this.settledBy.delete(actor);
    for (const id of ids) {
      this.settled.delete(id);
      this.deps.store.outbox.remove(id);
    }
  }

  /** Records a request sent in this turn (inside its transaction). */
  record(o: OutMessage): void {
    if (this.deps.keptOffDisk(o.env.type)) this.inRam.set(o.env.id, o);
    else this.deps.store.outbox.put(o.env.id, o);
  }

  /** An answered request leaves the outbox (inside a transaction). */
  forget(id: string): void {
    this.inRam.delete(id);
    this.deps.store.outbox.remove(id);
  }

  /** The ids of the requests of `type` still waiting for `peer`, on disk or (kept off disk) in RAM. */
  waitingFor(peer: string, type: string): string[] {
    const ids: string[] = [];
    const waits = (o: OutMessage) => o.peer === peer && o.env.type === type;
    if (this.deps.keptOffDisk(type)) for (const [id, o] of this.inRam) if (waits(o)) ids.push(id);
    for (const { key, value } of this.deps.store.outbox.getRange()) {
      if (waits(value) && !this.settled.has(key)) ids.push(key);
    }
    return ids;
  }

  /** Removes these requests from the outbox (inside a transaction): they will never be answered. */
  abandon(ids: readonly string[]): void {
    for (const id of ids) {
      this.inRam.delete(id);
      this.deps.store.outbox.remove(id);
    }
  }

  /** Sends again what waits for `peer` (its link is back). */
  resendTo(peer: string): void {
    for (const { key, value } of this.deps.store.outbox.getRange()) {
      if (value.peer === peer && !this.settled.has(key)) this.deps.transmit(value);
    }
    for (const value of this.inRam.values()) {
      if (value.peer === peer) this.deps.transmit(value);
    }
  }

  /** Schedules the next sending of a request: at `retransmitMs`, doubling per attempt up to `retransmitCapMs`. */
  schedule(id: string, attempt = 0): void {
    if (this.deps.stopped()) return;
    const { clock, timing } = this.deps;
    this.timers.get(id)?.();
    const delay = Math.min(timing.retransmitCapMs, timing.retransmitMs * 2 ** Math.min(attempt, BACKOFF_DOUBLINGS_MAX));
    const cancel = clock.schedule(clock.now() + delay, () => {
      this.timers.delete(id);
      if (this.deps.stopped() || this.deps.store.isClosed) return;
      const entry = this.pending(id);
      if (!entry) return;
      this.deps.log.debug('request sent again', { id, type: entry.env.type, attempt: attempt + 1 });
      this.deps.resent?.();
      this.deps.transmit(entry);
      this.schedule(id, attempt + 1);
    });
    this.timers.set(id, cancel);
  }

  /** Stops sending a request again (it was answered, or given up). */
  cancel(id: string): void {
    this.timers.get(id)?.();
    this.timers.delete(id);
  }

  /** Schedules every request on disk (a start or a reload). */
  scheduleStored(): void {
    for (const { key } of this.deps.store.outbox.getRange()) this.schedule(key, 0);
  }

  /** Schedules every request kept in RAM. */
  scheduleInRam(): void {
    for (const id of this.inRam.keys()) this.schedule(id, 0);
  }

  /** Cancels every retransmission, and forgets what was settled in RAM (a stop, a crash, a reload: the actors go too). */
  cancelAll(): void {
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    this.settled.clear();
    this.settledBy.clear();
  }

  /** The requests kept in RAM, as a batch starts (undefined when there are none: the usual case). */
  saveRam(): RamOutbox {
    return this.inRam.size > 0 ? new Map(this.inRam) : undefined;
  }

  /** Puts the RAM requests back as they were before a batch whose commit failed. */
  restoreRam(saved: RamOutbox): void {
    this.inRam.clear();
    for (const [id, o] of saved ?? []) this.inRam.set(id, o);
  }
}
