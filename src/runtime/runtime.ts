/**
 * The party runtime, assembled (architecture.md, "The party runtime"): how
 * a pure machine becomes a durable, talking actor. Each part has one job:
 *
 *   queue.ts    one queue per party, turns committed in batches (CommitPolicy)
 *   engine.ts   a job as a turn: run the machines, write, then speak
 *   intake.ts   received bytes: validate, settle answers, admit requests
 *   inbox.ts    the replies to received requests (repeats), pruned in time
 *   outbox.ts   sent requests until answered, sent again on a backoff
 *   host.ts     the actors: restored, dispatched to, retired at rest
 *   timers.ts   deadlines kept as data in the machines' contexts
 *   links.ts    one link per peer; the one place envelopes are sent
 *   turn.ts     the TurnContext a party's handlers act through
 *
 * This file wires them, and runs the party's life: start (rehydrate from
 * the store), stop, crash, and the reload after a failed commit.
 */
import type { EventObject } from 'xstate';
import type { Clock } from '../clock.ts';
import type { Rng } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { Logger } from '../log.ts';
import type { PartyStore } from '../store/party.store.ts';
import { DEFAULT_TIMING, type Timing } from '../timing.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { Link } from '../transport/link.ts';
import { TurnEngine, type Done, type Job } from './engine.ts';
import { ActorHost } from './host.ts';
import { Inbox } from './inbox.ts';
import { Intake } from './intake.ts';
import { Links } from './links.ts';
import { Outbox } from './outbox.ts';
import { Resends } from './resends.ts';
import { GROUP_COMMIT, TurnQueue } from './queue.ts';
import { Timers } from './timers.ts';
import { MessageIds, type TurnContext, type TurnParts } from './turn.ts';
import type { MachineKind, RuntimeDeps } from './types.ts';

/** What the runtime asks of the party it runs (PartyRuntime, src/actors/runtime.ts, answers it). */
export interface PartyHooks {
  /** The machines the party hosts, by kind name. */
  kinds(): Record<string, MachineKind>;
  /** Whether the party's request ids carry 64 random bits (see MessageIds). */
  requestIdsUnguessable(): boolean;
  /** Request types never written to disk (see Outbox). */
  keptOffDisk(type: string): boolean;
  /** Request types answered without an inbox record: their handler only reads, or is safe to run again. */
  answeredFresh(type: string): boolean;
  /** Whether the party drives chip sessions: its last frame of each is sent again until answered (resends.ts). */
  resendsFrames(): boolean;
  /** Whether an answer that only moves one actor in RAM is absorbed, not written (engine.ts). */
  absorbsAnswers(): boolean;
  inboxRecordsMax(): number;
  isSettled(mig: string): boolean;
  /** Whether a message from this peer is taken at all, before it is decoded. */
  admitMessage(peer: string): boolean;
  onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void;
  onIntent(key: string, intent: EventObject, turn: TurnContext): void;
  /** At the end of a turn that moved actors, before its commit: `changed` are those whose snapshot it writes (or removes). */
  onCommitting(changed: string[], turn: TurnContext): void;
  onReloaded(turn: TurnContext): void;
  onLinkAttached(peer: string): void;
  onLinkClosed(peer: string, reason: string): void;
}

/** The party's life, as the engine needs to change it. */
export interface Life {
  /** A turn failed after a state change: the party stops taking work. */
  halt(): void;
  /** A crash: RAM is dropped, only what the store committed remains. */
  kill(): Promise<void>;
  /** A commit failed: the actors, timers and retransmissions are read back from the store, in place. */
  reload(): void;
  /** After a reload: the party's own hook, as a turn. */
  reloaded(): void;
}

/** Everything the engine works with. */
export interface Parts {
  readonly party: string;
  readonly store: PartyStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly links: Links;
  readonly outbox: Outbox;
  readonly inbox: Inbox;
  readonly resends: Resends;
  readonly host: ActorHost;
  readonly timers: Timers;
  readonly intake: Intake;
  readonly ids: MessageIds;
  readonly hooks: PartyHooks;
  readonly turnParts: TurnParts;
  readonly life: Life;
  readonly observe: RuntimeDeps['observe'];
  readonly onTurnPoint: RuntimeDeps['onTurnPoint'];
}

export class Runtime implements Parts, Life {
  readonly party: string;
  readonly store: PartyStore;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly log: Logger;
  readonly timing: Timing;
  readonly links: Links;
  readonly outbox: Outbox;
  readonly inbox: Inbox;
  readonly resends: Resends;
  readonly host: ActorHost;
  readonly timers: Timers;
  readonly intake: Intake;
  readonly ids: MessageIds;
  readonly turnParts: TurnParts;
  readonly observe: RuntimeDeps['observe'];
  readonly onTurnPoint: RuntimeDeps['onTurnPoint'];
  readonly life: Life = this;
  private readonly engine: TurnEngine;
  private readonly queue: TurnQueue<Job, Done>;
  private started = false;
  private stopped = false;
  private crashedNow = false;
  private killing: Promise<void> | undefined;

  constructor(
    deps: RuntimeDeps,
    readonly hooks: PartyHooks,
  ) {
    const { id: party, store, clock, rng, observe } = deps;
    this.party = party;
    this.store = store;
    this.clock = clock;
    this.rng = rng;
    this.observe = observe;
    this.onTurnPoint = deps.onTurnPoint;
    this.log = deps.log.child({ party });
    this.timing = deps.timing ?? DEFAULT_TIMING;
    const { log, timing } = this;
    this.engine = new TurnEngine(this);
    const engine = this.engine;
    this.links = new Links(party, log, deps, {
      message: (peer, bytes) => this.received(peer, bytes),
      attached: (peer) => hooks.onLinkAttached(peer),
      closed: (peer, reason) => !this.stopped && hooks.onLinkClosed(peer, reason),
    });
    this.outbox = new Outbox({
      store,
      clock,
      timing,
      log,
      transmit: (o) => this.links.transmit(o),
      keptOffDisk: (t) => hooks.keptOffDisk(t),
      stopped: () => this.stopped,
      resent: () => observe?.resent?.(party),
    });
    this.inbox = new Inbox({ party, store, clock, timing, log, recordsMax: () => hooks.inboxRecordsMax(), isSettled: (mig) => hooks.isSettled(mig) });
    this.host = new ActorHost({
      party,
      store,
      log,
      kinds: () => hooks.kinds(),
      emitted: (k, e) => engine.emitted(k, e),
      moving: (k) => engine.running().moved(k),
      inspect: deps.inspect,
    });
    this.resends = new Resends({
      clock,
      timing,
      newId: () => this.ids.next('frame'),
      transmit: (o) => this.links.transmit(o),
      stopped: () => this.stopped,
    });
    this.timers = new Timers(clock, (actorKey, event) => {
      if (event.type === 'RETRY_DUE') observe?.retried?.(party);
      this.enqueue({ kind: 'timer', actorKey, event });
    });
    this.ids = new MessageIds(party, rng, () => hooks.requestIdsUnguessable());
    this.intake = new Intake({
      ...{ party, clock, rng, log, links: this.links, outbox: this.outbox, inbox: this.inbox, resends: this.resends },
      ...{ observe, tap: deps.tap, intercept: deps.intercept },
      answeredFresh: (t) => hooks.answeredFresh(t),
      say: (o) => engine.say(o),
      requeue: (peer, bytes, atMs) => clock.schedule(atMs, () => this.enqueue({ kind: 'message', peer, bytes })),
      handle: (env, peer, turn) => hooks.onEnvelope(env, peer, turn),
    });
    this.turnParts = { party, clock, ids: this.ids, links: this.links, outbox: this.outbox, inbox: this.inbox, host: this.host, intercept: deps.intercept };
    this.queue = new TurnQueue(engine, deps.commitPolicy ?? GROUP_COMMIT);
  }

  /** Rehydrates every actor from its snapshot and re-arms the timers kept in their contexts. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.ids.start(this.store, this.clock);
    await this.inbox.index();
    this.rehydrate();
  }

  /** Actors from their snapshots, their timers, the outbox's retransmissions: what a (re)start rebuilds from the store. */
  private rehydrate(): void {
    this.host.restoreAll();
    for (const key of this.host.liveKeys()) this.timers.arm(key, this.host.live(key)!);
    this.outbox.scheduleStored();
    this.inbox.reset();
  }

  /** Finishes queued work, then closes links and the store. */
  async stop(): Promise<void> {
    if (this.stopped) {
      if (!this.store.isClosed) await this.store.close();
      return;
    }
    await this.idle();
    this.stopped = true;
    this.queue.close();
    this.dropRam('party stopping');
    await this.store.close();
  }

  /** Cancels every timer and retransmission, stops the actors, closes the links. */
  private dropRam(reason: string): void {
    this.outbox.cancelAll();
    this.resends.cancelAll();
    this.timers.cancelAll();
    this.host.stopAll();
    this.links.closeAll(reason);
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  get busy(): boolean {
    return this.queue.busy;
  }

  get queueLength(): number {
    return this.queue.length;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  get crashed(): boolean {
    return this.crashedNow;
  }

  /** Binds a link to a peer name, and resends what the outbox holds for it. */
  attach(peer: string, link: Link, remoteId: string): void {
    this.links.attach(peer, link, remoteId);
    if (this.started) this.outbox.resendTo(peer);
  }

  private received(peer: string, bytes: Uint8Array): void {
    if (!this.hooks.admitMessage(peer)) {
      this.observe?.refused?.('anonymous_per_s');
      return;
    }
    this.enqueue({ kind: 'message', peer, bytes });
  }

  private enqueue(job: Job): void {
    const taken = this.queue.push(job);
    if (taken === 'queued') return;
    const why = taken === 'closed' ? `${this.party} is stopped` : `${this.party} queue is full`;
    if (job.kind === 'local') job.reject(new ProtocolError('BUSY', why));
    else if (job.kind === 'message' && taken === 'full') this.intake.refuse(job.peer, job.bytes, new ProtocolError('BUSY', why));
  }

  /** Runs fn as one turn of this party (a user command or an operator action). */
  runLocal<T>(fn: (turn: TurnContext) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.enqueue({ kind: 'local', run: fn, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /**
   * Whether a message this party sends would be sent again after a crash:
   * in its outbox (or kept off disk on purpose, as a login proof is), or a
   * reply kept in the inbox record of the request it answers.
   */
  remembers(id: string, corr?: string): boolean {
    if (this.outbox.pending(id)) return true;
    return corr !== undefined && this.inbox.holdsReply(corr, id);
  }

  // ---- Life -----------------------------------------------------------------------------

  halt(): void {
    this.stopped = true;
    this.queue.close();
  }

  kill(): Promise<void> {
    this.killing ??= this.die();
    return this.killing;
  }

  private async die(): Promise<void> {
    this.stopped = true;
    this.crashedNow = true;
    for (const job of this.queue.clear()) if (job.kind === 'local') job.reject(new ProtocolError('UNEXPECTED', `${this.party} crashed`));
    this.dropRam('crashed');
    await this.store.close();
  }

  reload(): void {
    this.outbox.cancelAll();
    this.resends.cancelAll();
    this.timers.cancelAll();
    this.host.stopAll(true);
    this.rehydrate();
  }

  reloaded(): void {
    void this.runLocal((turn) => this.hooks.onReloaded(turn)).catch((e) => this.log.error('reload hook failed', { error: String(e) }));
  }
}
