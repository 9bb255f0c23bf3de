/**
 * The turn engine: runs each job as a turn and carries out what the turn
 * did once its batch is on disk (the queue's BatchHost).
 *
 *   validate -> deduplicate by message id -> actor.send -> collect what the
 *   machines emitted -> put snapshots, outbox, replies and durable effects
 *   into the batch's transaction -> (flushed) -> send, arm timers, answer.
 *
 * Nothing is sent before the transaction that produced it is on disk
 * ("persist, then speak"), not even what a turn says at once (a repeat's
 * stored answer, a refusal): that waits in the turn's `immediate` list.
 */
import type { EventObject } from 'xstate';
import { ProtocolError } from '../protocol/errors.ts';
import { attributeTo, enterParty, leaveParty } from '../metrics/counters.ts';
import { kindOf } from '../transport/messages.ts';
import { atRest, type SnapshotWrites } from './host.ts';
import type { BatchHost, RanTurn } from './queue.ts';
import type { Parts } from './runtime.ts';
import { stopwatch } from './stopwatch.ts';
import { Turn, type TurnContext, type TurnRecord } from './turn.ts';
import { CrashSignal, type OutMessage, type TurnPoint } from './types.ts';

/** Internal events one turn may raise (a loop guard: a machine that keeps raising is a bug). */
export const INTERNAL_EVENTS_PER_TURN_MAX = 1_000;

export type Job =
  | { kind: 'message'; peer: string; bytes: Uint8Array }
  | { kind: 'local'; run: (turn: TurnContext) => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }
  | { kind: 'timer'; actorKey: string; event: EventObject };

/** A job run in memory, waiting for its batch's commit. */
export interface Done extends RanTurn {
  job: Job;
  turn: Turn;
  started: number;
  workMs: number;
  result?: unknown;
  failure?: unknown;
  /** Failed after a state change (or with a non-protocol error): the party stops. */
  fatal: boolean;
  /** A crash was injected before its commit. */
  crashed: boolean;
  stops: boolean;
  /** Nothing to write. */
  empty: boolean;
  /** The turn's writes, until they are put into the transaction. */
  writes?: () => void;
  /** What the turn said at once (answers from the inbox, refusals), spoken after the flush. */
  immediate: OutMessage[];
}

/** The state of the batch being committed. */
interface BatchState {
  /** The requests kept in RAM as the batch started (a failed commit puts them back). */
  ram: ReturnType<Parts['outbox']['saveRam']>;
  now: number;
  sweepDue: boolean;
  swept: boolean;
  pruned: number;
}

export class TurnEngine implements BatchHost<Job, Done> {
  /** The turn running now, if any: what the actors' emits and moves belong to. */
  private current: Turn | null = null;
  /** While a turn runs: where what it says waits for the batch's flush. */
  private sink: OutMessage[] | null = null;
  private batch: BatchState | undefined;

  constructor(private readonly p: Parts) {}

  // ---- what the host and the intake call back into -------------------------------

  /** The turn running now; an actor may only move or emit inside one. */
  running(): Turn {
    if (!this.current) throw new Error(`${this.p.party}: this operation needs a running turn`);
    return this.current;
  }

  /** An event an actor emitted, handed to the party with its turn. */
  emitted(key: string, event: EventObject): void {
    const turn = this.running();
    try {
      this.p.hooks.onIntent(key, event, turn);
    } catch (error) {
      // Caught here, or XState throws it again on a timer, outside the turn, while the turn commits as if it had run.
      turn.failedIntent(error);
    }
  }

  /** Says a message: after the batch's flush while a turn runs, at once otherwise. */
  say(o: OutMessage): void {
    if (this.sink) this.sink.push(o);
    else this.p.links.transmit(o);
  }

  // ---- the batch (TurnQueue's BatchHost) -------------------------------------------

  async prepare(): Promise<boolean> {
    const { inbox, outbox, clock } = this.p;
    inbox.newBatch();
    const now = clock.now();
    const batch: BatchState = { ram: outbox.saveRam(), now, sweepDue: inbox.sweepDue(now), swept: false, pruned: 0 };
    this.batch = batch;
    if (!batch.sweepDue || !inbox.recovering) return true;
    // After a failed commit, pruning goes first, in a transaction of its own: turns that need space must not take it down with them.
    let pruned: number;
    try {
      pruned = await this.p.store.commit(() => inbox.sweep(now));
    } catch (e) {
      await this.failedWith([], e, batch.ram, true);
      return false;
    }
    inbox.sweepCommitted(pruned);
    batch.sweepDue = false;
    return true;
  }

  run(job: Job): Done {
    return this.process(job);
  }

  write(d: Done): void {
    if (d.fatal) d.stops = true;
    else if (d.failure === undefined && this.point('before-persist', d.turn.record)) d.crashed = d.stops = true;
    else if (d.writes) {
      const applying = stopwatch.now();
      const writes = d.writes;
      d.writes = undefined;
      writes();
      d.workMs += stopwatch.now() - applying;
    }
  }

  closingDue(): boolean {
    const batch = this.batch!;
    if (!batch.sweepDue) return false;
    // A batch that wrote nothing (relayed frames) commits for the sweep alone only when it has records to prune.
    if (this.p.inbox.hasPrunes(batch.now)) return true;
    this.p.inbox.sweepSkipped(batch.now);
    batch.sweepDue = false;
    return false;
  }

  closing(): void {
    const batch = this.batch!;
    if (!batch.sweepDue) return;
    batch.swept = true;
    batch.pruned = this.p.inbox.sweep(batch.now);
  }

  commit(fn: () => void): Promise<void> {
    return this.p.store.commit(fn);
  }

  async committed(turns: Done[]): Promise<void> {
    const batch = this.batch!;
    if (batch.swept) this.p.inbox.sweepCommitted(batch.pruned);
    const flushed = stopwatch.now();
    for (const d of turns) {
      if (d.crashed) return this.crash(d.job);
      if (d.fatal) return this.fail(d);
      if (!this.finish(d, flushed)) return this.crash(d.job);
    }
  }

  failed(turns: Done[], error: unknown): Promise<void> {
    const batch = this.batch!;
    return this.failedWith(turns, error, batch.ram, batch.swept);
  }

  // ---- one turn ------------------------------------------------------------------------

  /**
   * A turn in memory: validate, deduplicate, run the machines. Nothing is
   * written or sent yet; what the turn says at once goes to its `immediate`
   * list, spoken after the batch is on disk.
   */
  private process(job: Job): Done {
    const started = stopwatch.now();
    const turn = new Turn(this.p.turnParts);
    const d: Done = { job, turn, started, workMs: 0, fatal: false, crashed: false, stops: false, empty: true, immediate: [] };
    this.sink = d.immediate;
    try {
      this.handle(d);
      if (d.failure !== undefined) this.refused(d);
      else this.completed(d);
      return d;
    } finally {
      this.sink = null;
      d.workMs = stopwatch.now() - started;
    }
  }

  /** Runs the job's handler and every event it raised; a failure is kept in `d.failure`. */
  private handle(d: Done): void {
    const { job, turn } = d;
    this.current = turn;
    // The crypto a turn does is this party's (issue 7's counters; no effect on behaviour).
    const charged = enterParty(this.p.party);
    try {
      if (job.kind === 'message') this.p.intake.receive(job.peer, job.bytes, turn);
      else if (job.kind === 'local') d.result = job.run(turn);
      else if (this.p.host.live(job.actorKey)) turn.dispatch(job.actorKey, job.event);
      this.drainInternal(turn);
    } catch (e) {
      d.failure = e;
    } finally {
      turn.end();
      this.current = null;
      leaveParty(charged);
    }
  }

  /** A turn that failed: fatal after a state change; otherwise refused, with only its acks to write. */
  private refused(d: Done): void {
    const { job, turn } = d;
    const record = turn.record;
    if (record.dirty || !(d.failure instanceof ProtocolError)) {
      d.fatal = true;
      return;
    }
    if (job.kind === 'message') this.p.intake.refuse(job.peer, job.bytes, d.failure, record.received);
    // An answer nobody wanted any more (the machine moved on) still answered its request: stop sending it.
    if (record.acked.length > 0) {
      const acked = [...record.acked];
      d.empty = false;
      d.writes = () => {
        for (const id of acked) this.p.outbox.forget(id);
      };
    }
  }

  /**
   * An answer to a request of ours that moved one actor, in RAM, and did nothing else (no request or reply
   * sent, no record written, the actor still at work and written before): it is absorbed, not written. Its
   * request stays on disk, no longer sent again (Outbox.settleLater), until the actor's next written snapshot
   * removes it in the same transaction; a restart before that finds the actor before the answer and its
   * request in the outbox, sends it again, and gets the same answer (the peer's inbox) or a new one. So a step
   * that collects answers (three providers' preflights) commits once, with its last one (issue 19).
   */
  private absorbs(record: TurnRecord): string | undefined {
    const received = record.received;
    if (!this.p.hooks.absorbsAnswers() || !received || kindOf(received.type) === 'request' || kindOf(received.type) === 'notice') return undefined;
    if (record.acked.length === 0 || record.writes.length > 0 || record.touched.size !== 1) return undefined;
    if (!record.out.every((o) => kindOf(o.env.type) === 'notice')) return undefined;
    const [key] = record.touched;
    if (!this.p.host.workingAndWritten(key!)) return undefined;
    // Every acked id is pending (Intake.settled): one not kept in RAM is on disk.
    return record.acked.some((id) => this.p.outbox.isKeptInRam(id)) ? undefined : key;
  }

  /** A turn that ran: the party's commit hook, then its writes (none for a request answered fresh that changed nothing). */
  private completed(d: Done): void {
    const { turn } = d;
    const record = turn.record;
    const absorbedBy = this.absorbs(record);
    if (absorbedBy !== undefined) {
      for (const id of record.acked) this.p.outbox.settleLater(id, absorbedBy);
      return;
    }
    // A turn moved by a notice that only spoke notices and wrote nothing of its own only relayed (RELAY_TAG).
    const isNotice = (o: OutMessage) => kindOf(o.env.type) === 'notice';
    const relayOnly =
      record.received !== undefined &&
      kindOf(record.received.type) === 'notice' &&
      record.writes.length === 0 &&
      record.acked.length === 0 &&
      record.out.every(isNotice);
    const snapshots = this.p.host.snapshotsOf(record.touched, relayOnly);
    if (record.touched.size > 0) {
      turn.reopen();
      this.current = turn;
      try {
        this.p.hooks.onCommitting([...snapshots.put.map(([key]) => key), ...snapshots.remove], turn);
      } finally {
        turn.end();
        this.current = null;
      }
    }
    // A turn writes only what a restart needs (issue 19, "lean relaying"): a snapshot that changed, its own
    // writes, the request it recorded or answered, what it sent that must be sent again. A relayed frame (a
    // notice, which moves no machine's persisted state) and a request answered fresh that changed nothing write
    // nothing, not even the sequence number a fresh reply used: a reply's id is never looked up, so one used again
    // after a crash is harmless, and a notice's id does not come from the stored sequence (MessageIds).
    const inbound = record.inbound;
    const freshAnswer = (o: OutMessage) => inbound !== undefined && !record.recordInbound && o.env.corr === inbound.id && kindOf(o.env.type) === 'reply';
    const unwritten = (o: OutMessage) => isNotice(o) || freshAnswer(o);
    d.empty =
      record.writes.length === 0 &&
      snapshots.put.length === 0 &&
      snapshots.remove.length === 0 &&
      record.acked.length === 0 &&
      (!inbound || !record.recordInbound) &&
      record.out.every(unwritten);
    if (!d.empty) d.writes = this.turnWrites(record, snapshots);
  }

  private drainInternal(turn: Turn): void {
    const internal = turn.record.internal;
    let n = 0;
    while (internal.length > 0) {
      if (++n > INTERNAL_EVENTS_PER_TURN_MAX) throw new Error(`${this.p.party}: more than ${INTERNAL_EVENTS_PER_TURN_MAX} internal events in one turn`);
      const { key, event } = internal.shift()!;
      // An event raised earlier in this turn that an earlier one overtook (two providers refusing at once): nothing to do.
      const snap = this.p.host.actorOf(key)?.getSnapshot();
      if (snap && (snap.status !== 'active' || !snap.can(event as EventObject))) {
        this.p.log.debug('internal event no longer expected', { actor: key, event: event.type });
        continue;
      }
      turn.dispatch(key, event);
    }
  }

  /** A turn's durable record, as one function to run inside a write transaction: snapshots, outbox, inbox and replies, acks, seq. */
  private turnWrites(record: TurnRecord, snapshots: SnapshotWrites): () => void {
    const { store, inbox, outbox } = this.p;
    const seq = this.p.ids.current;
    const at = this.p.clock.now();
    const inbound = record.inbound && record.recordInbound ? record.inbound : undefined;
    return () => {
      for (const w of record.writes) w();
      for (const [key, value] of snapshots.put) {
        store.snapshots.put(key, value);
        outbox.forgetSettledOf(key);
      }
      for (const key of snapshots.remove) {
        store.snapshots.remove(key);
        outbox.forgetSettledOf(key);
      }
      if (inbound) inbox.record(inbound, at);
      for (const o of record.out) {
        if (kindOf(o.env.type) === 'request') outbox.record(o);
        inbox.addReply(o.env);
      }
      for (const id of record.acked) outbox.forget(id);
      store.meta.put('seq', seq);
    };
  }

  /**
   * After the batch is on disk: the turn speaks (what it said at once, then
   * what its machines sent), its timers are armed and its caller answered.
   * False when a crash was injected here (the caller crashes the party).
   */
  private finish(d: Done, flushed: number): boolean {
    const { job } = d;
    const record = d.turn.record;
    const { links, outbox, observe, party } = this.p;
    if (d.failure !== undefined) {
      for (const o of d.immediate) links.transmit(o);
      for (const id of record.acked) outbox.cancel(id);
      if (job.kind === 'local') job.reject(d.failure);
      return true;
    }
    observe?.turn(party, flushed - d.started, !d.empty);
    if (this.point('after-persist', record)) return false;
    const sending = stopwatch.now();
    attributeTo(party, () => {
      for (const o of d.immediate) links.transmit(o);
      const resends = this.p.hooks.resendsFrames();
      for (const o of record.out) {
        const went = links.transmit(o);
        if (kindOf(o.env.type) === 'request') outbox.schedule(o.env.id, 0);
        // A frame that went out is sent again until answered; one whose link was down is left to the session's deadline.
        else if (resends && went) this.p.resends.sent(o);
      }
    });
    observe?.work?.(party, d.workMs + stopwatch.now() - sending);
    for (const id of record.acked) outbox.cancel(id);
    if (this.point('after-send', record)) return false;
    this.settleActors(record);
    if (job.kind === 'local') job.resolve(d.result);
    return true;
  }

  /** The turn's actors after it spoke: their timers armed, its after-turn callbacks run, those now at rest retired. */
  private settleActors(record: TurnRecord): void {
    const { host, timers } = this.p;
    for (const key of record.touched) {
      const actor = host.live(key);
      if (actor) timers.arm(key, actor);
    }
    for (const fn of record.after) fn();
    for (const key of record.touched) {
      const actor = host.live(key);
      if (actor && !timers.has(key) && atRest(actor)) {
        timers.cancel(key);
        host.retire(key);
      }
    }
  }

  /** Runs the turn-point hook; true when it asks for a crash here. */
  private point(point: TurnPoint, record: TurnRecord): boolean {
    try {
      this.p.onTurnPoint?.(this.p.party, point, record.info);
      return false;
    } catch (e) {
      if (e instanceof CrashSignal) return true;
      throw e;
    }
  }

  /** A machine moved and then something threw: the state in memory is no longer one we can persist honestly. */
  private fail(d: Done): never {
    this.p.log.error('turn failed after a state change', { error: String(d.failure) });
    this.p.life.halt();
    if (d.job.kind === 'local') d.job.reject(d.failure);
    // Fail loudly; a restart rehydrates.
    throw d.failure;
  }

  private async crash(job: Job): Promise<void> {
    this.p.log.warn('crashed (fault injection)', {});
    if (job.kind === 'local') job.reject(new ProtocolError('UNEXPECTED', `${this.p.party} crashed`));
    await this.p.life.kill();
  }

  /**
   * A batch whose transaction failed: nothing of it is on disk, so nothing
   * of it is said. Its callers and senders are refused STORE_FULL (a request
   * is sent again, or its sender's machine retries), and the actors, which
   * moved ahead of the store, are read back from it in place, as a restart
   * would, without stopping the party: it goes on serving, and pruning frees
   * the space it needs.
   */
  private async failedWith(done: Done[], error: unknown, ram: BatchState['ram'], swept: boolean): Promise<void> {
    const { log, inbox, outbox, intake, party } = this.p;
    const cause = (error as { commitError?: unknown }).commitError;
    if (cause instanceof Promise) cause.catch(() => {});
    log.error('commit failed; the batch is undone and the actors reload from the store', { error: String(error) });
    inbox.commitFailed();
    const refusal = new ProtocolError('STORE_FULL', `${party}'s store is full; it serves work in progress and refuses new work`);
    for (const d of done) {
      if (d.job.kind === 'local') d.job.reject(refusal);
      else if (d.job.kind === 'message') intake.refuse(d.job.peer, d.job.bytes, refusal, d.turn.record.received);
    }
    outbox.restoreRam(ram);
    this.p.life.reload();
    if (swept) inbox.sweepFailed();
    outbox.scheduleInRam();
    this.p.life.reloaded();
  }
}
