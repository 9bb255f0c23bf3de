/**
 * The party runtime (architecture.md, "The party runtime"): how a pure
 * machine becomes a durable, talking actor.
 *
 * One party, one queue. Each job (an inbound message, a local command, a
 * timer) is one turn:
 *   validate -> deduplicate by message id -> actor.send -> collect what the
 *   machines emitted -> commit snapshots, outbox, replies and durable effects
 *   in one LMDB transaction -> await flushed -> send.
 * Nothing is sent before the transaction that produced it is on disk
 * ("persist, then speak"). Requests stay in the outbox until answered and are
 * sent again when their link comes back; a duplicate request is answered with
 * the replies stored for it.
 *
 * The inbox (those stored replies) is bounded: a record answered longer ago
 * than the retention window (Timing.inboxRetentionMs), whose migration is
 * settled, is pruned by a sweep that rides on a batch's transaction. Per
 * sender, the highest sequence number pruned is kept (its floor): a request
 * at or below it that is not in the inbox was answered long ago, and is
 * refused STALE_REQUEST, never applied a second time.
 */
import { createActor, type Actor, type AnyStateMachine, type EventObject, type InspectionEvent } from 'xstate';
import type { Clock } from '../clock.ts';
import type { Rng, TrustVerdict } from '../crypto/index.ts';
import { ProtocolError, type Refusal } from '../errors.ts';
import type { Logger } from '../log.ts';
import { DEFAULT_TIMING, type Timing } from '../timing.ts';
import type { InboxEntry, PartyStore, PersistedActor } from '../store/party.store.ts';
import { decodeEnvelope, encodeEnvelope, peekHeader, PROTOCOL_VERSION, STEPS, type AnyEnvelope, type Envelope, type Step } from '../transport/envelope.ts';
import type { Link } from '../transport/link.ts';
import { kindOf, type BodyOf, type MessageType } from '../transport/messages.ts';
import { attributeTo, enterParty, leaveParty } from '../metrics/counters.ts';

/** Jobs waiting for the party's queue; beyond this, inbound messages are refused with BUSY. */
export const QUEUE_JOBS_MAX = 50_000;
/** Notice ids remembered to drop network duplicates (notices have no inbox record: frames, progress). */
export const NOTICE_IDS_REMEMBERED_MAX = 20_000;
/** Turns committed together in one LMDB transaction (group commit; async stores only). */
export const TURNS_PER_COMMIT_MAX = 256;
/** A batch stops taking jobs after this much work, ms, so its first turn's answer is not held too long. */
export const BATCH_WORK_MS_MAX = 50;
/** Internal events one turn may raise (a loop guard: a machine that keeps raising is a bug). */
export const INTERNAL_EVENTS_PER_TURN_MAX = 1_000;
/**
 * Inbox records a party keeps at most (~0.5 KB each: some 50 MB). Over it,
 * a sweep prunes the oldest answered records whatever their age (the floor
 * keeps their repeats from being applied again); while still over (all of
 * them unanswered work), new requests are refused BUSY.
 */
export const INBOX_RECORDS_MAX = 100_000;
/** A batch also sweeps the inbox when this long (ms, the party's clock) has passed since the last sweep. */
export const INBOX_SWEEP_EVERY_MS = 1_000;
/** Inbox records one sweep prunes at most, so a sweep never holds its batch's answers long; one that hit it goes on in the next batch. */
export const INBOX_PRUNES_PER_SWEEP_MAX = 1_000;
/** Inbox records one sweep looks at, pruned or not (unanswered work at the head of the inbox must not make every sweep long). */
export const INBOX_SWEEP_SCAN_MAX = 4_000;
/**
 * After a commit failed (a full disk), new requests are refused STORE_FULL
 * for this long (ms, the party's clock), unless a sweep frees space first:
 * work in progress gets the space there is, and new work is tried again
 * later rather than failing a commit, and reloading the party, each time.
 */
export const STORE_FULL_AFTER_FAILED_COMMIT_MS = 60_000;

export interface RuntimeDeps {
  id: string;
  store: PartyStore;
  clock: Clock;
  rng: Rng;
  log: Logger;
  /** XState inspection records of every actor of this party (run recorder, live page). */
  inspect?: (party: string, actorKey: string, event: InspectionEvent) => void;
  /** Sees every envelope this party receives or sends, encoded (the run recorder and the confidentiality tests). */
  tap?: (party: string, direction: 'in' | 'out', peer: string, bytes: Uint8Array) => void;
  /** Counters for metrics: every message handled or sent, every turn's duration. */
  observe?: RuntimeObserver;
  /** Timeouts and retry delays (DEFAULT_TIMING unless a test or the simulator runs faster). */
  timing?: Timing;
  /**
   * Steering (the model-based runs): make a request fail as if its receiver
   * had hit a transient fault, hold it back, or turn the answer to a request
   * that was processed into an error. Never set in a deployment.
   */
  steer?: Steering;
  /** Called at named points of every turn; fault injection hooks in here. */
  onTurnPoint?: (party: string, point: TurnPoint, info: { type?: string; step?: Step }) => void;
}

export type TurnPoint = 'before-persist' | 'after-persist' | 'after-send';

/**
 * Thrown by an onTurnPoint hook to crash the party right there (fault
 * injection): what the turn committed stays in LMDB, nothing else survives.
 */
export class CrashSignal extends Error {
  override readonly name = 'CrashSignal';
}

export interface Steering {
  /** Before a new request is handled: refuse it with this error, or hold it back this many ms (then it arrives). */
  beforeRequest?(party: string, env: AnyEnvelope): { fail?: Refusal; holdMs?: number } | undefined;
  /** After a request was handled: send this error instead of the reply (the work stays done). */
  replaceReply?(party: string, reply: AnyEnvelope): Refusal | undefined;
}

export interface RuntimeObserver {
  message(party: string, direction: 'in' | 'out', type: string, bytes: number): void;
  turn(party: string, ms: number, committed: boolean): void;
  /**
   * The turn's own work, ms: handling the job, running the machines,
   * encoding and sending; not the commit nor its wait for the disk (the
   * benchmark's per-party proxy for CPU in one process). Optional.
   */
  work?(party: string, ms: number): void;
  /** A message refused before it was decoded, by the limit that refused it (valmove_refused_total). Optional. */
  refused?(limit: string): void;
}

export interface MachineKind {
  machine: AnyStateMachine;
  /** Bumped when a machine's context or states change shape; snapshots of another version are refused. */
  version: number;
  /**
   * A finished actor of this kind is deleted in the turn that finishes it,
   * instead of resting on disk (a reader session: one per payment, nothing
   * to answer once its request's reply is in the inbox).
   */
  discardWhenDone?: boolean;
}

export interface Header {
  corr?: string;
  mig?: string;
  step?: Step;
  item?: number;
}

interface OutMessage {
  peer: string;
  env: AnyEnvelope;
}

type Job =
  | { kind: 'message'; peer: string; bytes: Uint8Array }
  | { kind: 'local'; run: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }
  | { kind: 'timer'; actorKey: string; event: EventObject };

/** A job run in memory, waiting for its batch's commit. */
interface Done {
  job: Job;
  turn: Turn;
  started: number;
  workMs: number;
  result?: unknown;
  failure?: unknown;
  /** Failed after a state change (or with a non-protocol error): the party stops. */
  fatal: boolean;
  /** Nothing to write. */
  empty: boolean;
  /** The turn's writes, until they are put into the transaction. */
  writes?: () => void;
  /** The caller of a local job was already answered. */
  answered?: boolean;
  /** Sends the turn made at once (answers from the inbox, refusals), spoken after the flush. */
  immediate: OutMessage[];
}

class Turn {
  readonly writes: Array<() => void> = [];
  readonly out: OutMessage[] = [];
  readonly touched = new Set<string>();
  readonly acked: string[] = [];
  readonly after: Array<() => void> = [];
  readonly internal: Array<{ key: string; event: EventObject }> = [];
  inbound?: AnyEnvelope;
  /** False for a request answered fresh (`requestsAnsweredFresh`): it leaves no inbox record. */
  recordInbound = true;
  received?: AnyEnvelope;
  /** What an intent handler threw while a machine ran (XState would rethrow it later, outside the turn). */
  intentFailure?: { error: unknown };
  dirty = false;
  info: { type?: string; step?: Step } = {};
}

interface Hosted {
  key: string;
  kind: string;
  actor: Actor<AnyStateMachine>;
  cancelTimer?: () => void;
  timerAt?: number;
  /** What the last snapshot written for this actor was made of (`turnWrites` skips an unchanged one). */
  written?: SnapshotMark;
}

/**
 * The parts of a snapshot that make its persisted form. Machines never
 * mutate their context in place (only `assign` makes a new one), so the same
 * context object, state value, status and history mean the same snapshot.
 */
interface SnapshotMark {
  context: unknown;
  value: string;
  status: string;
  history: unknown;
}

/** Finished, or in a state that only answers repeats (tagged 'rest'): nothing for it to do in RAM. */
function atRest(actor: Actor<AnyStateMachine>): boolean {
  const snap = actor.getSnapshot();
  return snap.status === 'done' || (snap.status === 'active' && snap.hasTag('rest'));
}

function markOf(actor: Actor<AnyStateMachine>): SnapshotMark {
  const snap = actor.getSnapshot();
  return { context: snap.context, value: JSON.stringify(snap.value), status: snap.status, history: snap.historyValue };
}

function sameMark(a: SnapshotMark | undefined, b: SnapshotMark): boolean {
  return a !== undefined && a.context === b.context && a.value === b.value && a.status === b.status && a.history === b.history;
}

/** A machine context that waits keeps its deadline as data (architecture.md: timers are data). */
/** An event for a hosted machine: the runtime checks it against the machine with `can()` before sending. */
export type MachineEvent = { type: string; [field: string]: unknown };

export interface TimerData {
  atMs: number;
  event: string;
}

/** Request ids are "<sender>#<seq>", or "<sender>#<seq>.<16 hex>" where ids are unguessable (see `send`). */
const REQUEST_ID = /^(.+)#(\d{1,15})(?:\.[0-9a-f]{16})?$/;

/** The sender and sequence number a request id names, or undefined when it is not a request id. */
export function parseRequestId(id: string): { from: string; seq: number } | undefined {
  const m = REQUEST_ID.exec(id);
  return m ? { from: m[1]!, seq: Number(m[2]) } : undefined;
}

export abstract class PartyRuntime {
  readonly id: string;
  protected readonly store: PartyStore;
  protected readonly clock: Clock;
  protected readonly rng: Rng;
  protected readonly log: Logger;
  protected readonly timing: Timing;
  private readonly deps: RuntimeDeps;
  private readonly links = new Map<string, Link>();
  private readonly recentNotices = new Set<string>();
  /** The party id at the other end of each link, when it differs from the link's name (a terminal's "chip"). */
  private readonly remoteIds = new Map<string, string>();
  private readonly hosted = new Map<string, Hosted>();
  private queue: Job[] = [];
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  private seq = 0;
  private turn: Turn | null = null;
  /** While a job runs in a batch: where its immediate sends wait for the batch's flush. */
  private sink: OutMessage[] | null = null;
  private stopped = false;
  private started = false;

  /** The machines this party hosts, by kind name. */
  protected abstract readonly kinds: Record<string, MachineKind>;

  /**
   * Whether this party's request ids carry 64 random bits after the counter.
   * A receiver answers a repeated request id from its inbox, to whoever sends
   * it on a link of the same name. Where names are not authenticated (a
   * terminal's, at the server) the id itself must be what proves the repeat
   * comes from the sender: a secret between the two ends, carried inside
   * their encrypted channel, that a stranger claiming the name can not guess.
   */
  protected readonly requestIdsUnguessable: boolean = false;

  /**
   * Request types this party never writes to disk: kept in RAM and sent
   * again while the party runs, lost with it (a login proof, which would
   * log in whoever read the file). Their sender must cope with the loss.
   */
  protected readonly requestsKeptOffDisk: ReadonlySet<string> = new Set();
  private readonly outboxInRam = new Map<string, OutMessage>();

  /**
   * Request types this party answers without an inbox record: their handler
   * only reads, or is safe to run again (a repeat is simply answered anew).
   * What a stranger may send before it has proven a key belongs here, so that
   * nothing it sends is written to disk (protocol.md §4.8).
   */
  protected readonly requestsAnsweredFresh: ReadonlySet<string> = new Set();

  /** INBOX_RECORDS_MAX; a test party lowers it to reach it. */
  protected readonly inboxRecordsMax: number = INBOX_RECORDS_MAX;
  /** Records in the inbox, as the last committed batch left them (kept in step by the writes; recounted on reload). */
  private inboxRecords = 0;
  /** The party's clock reading at or after which a batch sweeps the inbox again. */
  private nextSweepAt = 0;
  /** Where the last sweep stopped, when it stopped at a limit (the next one goes on from there). */
  private sweepFrom: [number, string] | undefined;
  /** Batches run so far; `storeFull` is measured at most once per batch. */
  private batches = 0;
  private fullMeasured: { batch: number; full: boolean } | undefined;
  /** When a commit last failed, until a sweep frees space or STORE_FULL_AFTER_FAILED_COMMIT_MS pass. */
  private failedCommitAt: number | undefined;
  /**
   * Records a sweep prunes at most: INBOX_PRUNES_PER_SWEEP_MAX, halved after
   * each failed commit that swept (deleting needs a few new pages too, and a
   * full disk may have room for a small sweep only), doubled back after each
   * sweep that commits.
   */
  private pruneLimit = INBOX_PRUNES_PER_SWEEP_MAX;

  constructor(deps: RuntimeDeps) {
    this.deps = deps;
    this.id = deps.id;
    this.store = deps.store;
    this.clock = deps.clock;
    this.rng = deps.rng;
    this.log = deps.log.child({ party: deps.id });
    this.timing = deps.timing ?? DEFAULT_TIMING;
  }

  // ---- lifecycle -----------------------------------------------------------

  /** Rehydrates every actor from its snapshot and re-arms the timers kept in their contexts. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // A new store counts from the clock, not from 0: a sender whose store was wiped must not number its
    // requests below the floor its receivers keep for it (their STALE_REQUEST check).
    this.seq = (this.store.meta.get('seq') as number | undefined) ?? this.clock.now();
    await this.indexInbox();
    this.rehydrate();
    this.onStarted();
  }

  /** Actors from their snapshots, their timers, the outbox's retransmissions: what a (re)start rebuilds from the store. */
  private rehydrate(): void {
    for (const { key, value } of this.store.snapshots.getRange()) {
      this.restore(key, value);
    }
    for (const h of [...this.hosted.values()]) {
      if (atRest(h.actor) && (h.actor.getSnapshot().context as { timer?: TimerData } | undefined)?.timer == null) this.retire(h);
    }
    for (const h of this.hosted.values()) this.armTimer(h);
    for (const { key } of this.store.outbox.getRange()) this.scheduleRetransmit(key, 0);
    this.inboxRecords = this.store.inboxCount();
    this.nextSweepAt = 0;
    this.sweepFrom = undefined;
  }

  /**
   * Inbox records written before they carried their arrival time have no
   * place in the by-time index the sweep reads: they get one, as if they had
   * arrived now (so they live one more retention window). Once per store.
   */
  private async indexInbox(): Promise<void> {
    if ((this.store.inboxByTime.getStats() as { entryCount: number }).entryCount >= this.store.inboxCount()) return;
    const now = this.clock.now();
    // In chunks, each read afresh from where the last one stopped (no cursor held across a commit).
    let after: string | undefined;
    for (;;) {
      const chunk: Array<[string, InboxEntry]> = [];
      let more = false;
      for (const { key, value } of this.store.inbox.getRange(after === undefined ? {} : { start: after })) {
        if (key === after) continue;
        if (chunk.length >= INBOX_PRUNES_PER_SWEEP_MAX) {
          more = true;
          break;
        }
        after = key;
        if (value.at === undefined) chunk.push([key, value]);
      }
      await this.store.commit(() => {
        for (const [id, rec] of chunk) {
          this.store.inbox.put(id, { ...rec, at: now });
          this.store.inboxByTime.put([now, id], 1);
        }
      });
      if (!more) return;
    }
  }

  /** Subclass hook after rehydration (e.g. rebuild indexes). */
  protected onStarted(): void {}

  /**
   * Subclass hook, run as a turn after a failed commit made the party reload
   * its actors from the store in place (as a restart would): fail what lived
   * in RAM only (open chip or SAM sessions), as `start` does after a restart.
   */
  protected onReloaded(): void {}

  /**
   * Whether the migration `mig` is settled, so the inbox records that name
   * it may be pruned once the retention window has passed (protocol.md §4.5:
   * a repeat is answered until the migration is settled). True unless a party
   * that tracks migrations says otherwise.
   */
  protected isSettled(_mig: string): boolean {
    return true;
  }

  /** This party's clock, ms (a tool linked to it numbers its requests from it, as a new store does). */
  now(): number {
    return this.clock.now();
  }

  /** Subclass hook at the end of a turn, before its commit: may add writes (e.g. an index of actor states). */
  protected onCommitting(_touched: string[]): void {}

  /** Finishes queued work, then closes links and the store. */
  async stop(): Promise<void> {
    if (this.stopped) {
      if (!this.store.isClosed) await this.store.close();
      return;
    }
    await this.idle();
    this.stopped = true;
    for (const cancel of this.retransmits.values()) cancel();
    this.retransmits.clear();
    for (const h of this.hosted.values()) {
      h.cancelTimer?.();
      h.actor.stop();
    }
    for (const link of this.links.values()) link.close('party stopping');
    this.links.clear();
    await this.store.close();
  }

  /** Resolves when the queue is empty and no turn is running. */
  idle(): Promise<void> {
    if (!this.draining && this.queue.length === 0) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  /** A turn is running or jobs are queued (the simulator waits for every party to be idle before it delivers more). */
  get busy(): boolean {
    return this.draining || this.queue.length > 0;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Jobs waiting in this party's queue (a gauge for /metrics). */
  get queueLength(): number {
    return this.queue.length;
  }

  /** Peers with an open link (for /healthz). */
  openLinks(): string[] {
    return [...this.links.entries()].filter(([, l]) => l.isOpen).map(([p]) => p);
  }

  // ---- links -----------------------------------------------------------------

  /**
   * Binds a link to a peer name, and resends what the outbox holds for it.
   * `remoteId` is the party id at the other end when the name is an alias.
   */
  attach(peer: string, link: Link, remoteId: string = peer): void {
    const previous = this.links.get(peer);
    if (previous && previous !== link) previous.close('replaced by a new connection');
    this.links.set(peer, link);
    this.remoteIds.set(peer, remoteId);
    this.onLinkAttached(peer);
    link.onMessage((bytes) => {
      if (!this.admitMessage(peer)) {
        this.deps.observe?.refused?.('anonymous_per_s');
        return;
      }
      this.enqueue({ kind: 'message', peer, bytes });
    });
    link.onClose((reason) => {
      const refusal = (link as { refusal?: { code: string; message: string } }).refusal;
      if (refusal) this.refusals.set(peer, refusal);
      if (this.links.get(peer) === link) {
        this.links.delete(peer);
        // A peer named by its link is forgotten with it (any number of strangers may come and go);
        // an alias (a terminal's "chip") is one of a few fixed names, kept.
        if (this.remoteIds.get(peer) === peer) this.remoteIds.delete(peer);
        if (!this.stopped) this.onLinkClosed(peer, reason);
      }
    });
    if (this.started) this.resendOutbox(peer);
  }

  /**
   * Binds a link whose channel is up only if `admit` still takes the name
   * with the key the channel proved (another connection may have won the
   * name between its hello and its finish); otherwise closes it, saying why.
   */
  protected attachAdmitted(peer: string, link: Link & { peerId?: string }, admit: (name: string, key: string | undefined) => TrustVerdict): boolean {
    const verdict = admit(peer, link.peerId);
    if (verdict !== true) {
      link.close(verdict === false ? 'not admitted' : `${verdict.code}: ${verdict.message}`.slice(0, 120));
      return false;
    }
    this.attach(peer, link);
    return true;
  }

  /** Closes the link to a peer (a lost connection, for fault injection and shutdown of one peer). */
  closeLink(peer: string, reason: string): void {
    this.links.get(peer)?.close(reason);
  }

  protected hasLink(peer: string): boolean {
    return this.links.get(peer)?.isOpen ?? false;
  }

  /**
   * The Ed25519 key (base64url) the peer on this link proved in its channel
   * handshake; undefined for a link with no channel (in-process wiring) or
   * an anonymous initiator. A name is only a claim; this is the proof.
   */
  protected peerKeyOf(peer: string): string | undefined {
    return (this.links.get(peer) as { peerId?: string } | undefined)?.peerId;
  }

  /** Why the channel to `peer` was refused, if its handshake failed (e.g. the peer does not trust us). */
  protected linkRefusal(peer: string): { code: string; message: string } | undefined {
    return this.refusals.get(peer);
  }
  private readonly refusals = new Map<string, { code: string; message: string }>();

  /**
   * Whether a message from this peer is taken at all, before it is decoded
   * (the server bounds what terminals that have not logged in may send, all
   * together). A dropped message is as if the network lost it.
   */
  protected admitMessage(_peer: string): boolean {
    return true;
  }

  /** A new connection took the peer's name: whatever the old connection had earned (a login) is gone. */
  protected onLinkAttached(_peer: string): void {}

  protected onLinkClosed(peer: string, reason: string): void {
    this.log.info('link closed', { peer, reason });
  }

  private resendOutbox(peer: string): void {
    for (const { value } of this.store.outbox.getRange()) {
      if (value.peer === peer) this.transmit(value);
    }
    for (const value of this.outboxInRam.values()) {
      if (value.peer === peer) this.transmit(value);
    }
  }

  /**
   * Whether a message this party sends would be sent again after a crash: in its outbox (or kept off disk on
   * purpose, as a login proof is), or a reply kept in the inbox record of the request it answers. The simulator's
   * persist-then-speak check asks this of every new message sent outside a turn.
   */
  remembers(id: string, corr?: string): boolean {
    if (this.pendingRequest(id)) return true;
    return corr !== undefined && (this.store.inbox.get(corr)?.replies.some((r) => r.id === id) ?? false);
  }

  /** A request this party sent and has no answer to yet, on disk or (kept off disk) in RAM. */
  private pendingRequest(id: string): OutMessage | undefined {
    return this.outboxInRam.get(id) ?? this.store.outbox.get(id);
  }

  private forgetRequest(id: string): void {
    this.outboxInRam.delete(id);
    this.store.outbox.remove(id);
  }

  // ---- the queue ---------------------------------------------------------------

  private enqueue(job: Job): void {
    if (this.stopped) {
      if (job.kind === 'local') job.reject(new ProtocolError('BUSY', `${this.id} is stopped`));
      return;
    }
    if (this.queue.length >= QUEUE_JOBS_MAX) {
      if (job.kind === 'message') this.refuseRaw(job.peer, job.bytes, new ProtocolError('BUSY', `${this.id} queue is full`));
      if (job.kind === 'local') job.reject(new ProtocolError('BUSY', `${this.id} queue is full`));
      return;
    }
    this.queue.push(job);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0 && !this.stopped) await this.runBatch();
    } finally {
      this.draining = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Runs fn as one turn of this party (a user command or an operator action). */
  protected runLocal<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.enqueue({ kind: 'local', run: fn, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /**
   * Group commit: runs the queued jobs as turns, one after another, inside
   * ONE LMDB write transaction, awaits its flush once, then lets each turn
   * speak in order. Every turn still sees the writes of the turns before it
   * (reads inside the transaction see its writes), so a duplicate request
   * handled in the same batch is answered from the inbox as before; and
   * whatever a turn would send at once (a duplicate's stored answer, a
   * refusal) waits for the flush too, so nothing is spoken before it is on
   * disk. A crash anywhere keeps exactly what the transaction committed.
   *
   * 'sync' stores (the simulator) take one job per batch: that is the
   * one-message-at-a-time order the simulator's traces were recorded in.
   */
  private async runBatch(): Promise<void> {
    const done: Done[] = [];
    const max = this.store.commitMode === 'sync' ? 1 : TURNS_PER_COMMIT_MAX;
    let stop: { at: Done; crash: boolean } | undefined;
    let wrote = false;
    this.batches++;
    // What a failed commit must put back: requests kept off disk live in RAM only (they are few: login proofs).
    const ramOutbox = this.outboxInRam.size > 0 ? new Map(this.outboxInRam) : undefined;
    const now = this.clock.now();
    let sweepDue = now >= this.nextSweepAt;
    let pruned = 0;
    let swept = false;
    if (sweepDue && this.failedCommitAt !== undefined) {
      // After a failed commit, pruning goes first, in a transaction of its own: turns that need space must not take it down with them.
      try {
        pruned = await this.store.commit(() => this.sweep(now));
      } catch (e) {
        return this.commitFailed([], e, ramOutbox, true);
      }
      this.sweepCommitted(pruned);
      sweepDue = false;
    }
    /** Prunes the inbox inside the batch's transaction, when a sweep is due and the batch was not cut short. */
    const sweep = (): void => {
      if (!sweepDue || stop) return;
      swept = true;
      pruned = this.sweep(now);
    };
    const take = (): void => {
      const budgetEnd = performance.now() + BATCH_WORK_MS_MAX;
      while (this.queue.length > 0 && !this.stopped && done.length < max) {
        if (done.length > 0 && performance.now() > budgetEnd) break;
        const d = this.process(this.queue.shift()!);
        done.push(d);
        if (d.fatal) {
          stop = { at: d, crash: false };
          return;
        }
        if (d.failure === undefined && this.point('before-persist', d.turn)) {
          stop = { at: d, crash: true };
          return;
        }
        if (!d.empty) {
          const committing = performance.now();
          this.applyTurn(d);
          d.workMs += performance.now() - committing;
          wrote = true;
        }
      }
    };
    try {
      if (this.store.commitMode === 'sync' && this.queue.length > 0) {
        // Same order as a one-turn commit: the turn in memory, then its transaction.
        take();
        const last = done[done.length - 1];
        const writes = last?.writes;
        if (last) last.writes = undefined;
        const all = wrote && writes ? () => (writes(), sweep()) : sweepDue && !stop ? sweep : undefined;
        if (last && last.failure !== undefined && !last.fatal) {
          // A refused job: its caller hears at once; the acks it carried are committed after.
          if (last.job.kind === 'local') last.job.reject(last.failure);
          last.answered = true;
          if (all) await this.store.commit(all);
        } else if (all) await this.commitAlone(all);
      } else {
        await this.store.commit(() => {
          take();
          sweep();
        });
      }
    } catch (e) {
      // The transaction failed (a full disk): the turns of the batch moved machines in memory that LMDB does not hold.
      return this.commitFailed(done, e, ramOutbox, swept);
    }
    if (swept) this.sweepCommitted(pruned);
    const flushed = performance.now();
    for (const d of done) {
      if (stop?.at === d) {
        if (stop.crash) return this.crash(d.job);
        // A machine moved and then something threw: the in-memory state is no
        // longer one we can persist honestly. Fail loudly; a restart rehydrates.
        this.log.error('turn failed after a state change', { error: String(d.failure) });
        this.stopped = true;
        if (d.job.kind === 'local') d.job.reject(d.failure);
        throw d.failure;
      }
      if (!this.finish(d, flushed)) return this.crash(d.job);
    }
  }

  /**
   * A batch whose transaction failed: nothing of it is on disk, so nothing
   * of it is said. Its callers and senders are refused STORE_FULL (a request
   * is sent again, or its sender's machine retries), and the actors, which
   * moved ahead of the store, are read back from it in place, as a restart
   * would, without stopping the party: it goes on serving, and pruning frees
   * the space it needs.
   */
  private async commitFailed(done: Done[], error: unknown, ramOutbox: Map<string, OutMessage> | undefined, swept: boolean): Promise<void> {
    const cause = (error as { commitError?: unknown }).commitError;
    if (cause instanceof Promise) cause.catch(() => {});
    this.log.error('commit failed; the batch is undone and the actors reload from the store', { error: String(error) });
    this.failedCommitAt = this.clock.now();
    const refusal = new ProtocolError('STORE_FULL', `${this.id}'s store is full; it serves work in progress and refuses new work`);
    for (const d of done) {
      if (d.job.kind === 'local' && !d.answered) d.job.reject(refusal);
      // (A 'sync' store already sent a refused job's refusal; an 'async' one held it with the rest of the batch.)
      else if (d.job.kind === 'message' && (d.failure === undefined || this.store.commitMode === 'async')) this.refuseRaw(d.job.peer, d.job.bytes, refusal, d.turn.received);
    }
    this.outboxInRam.clear();
    for (const [id, o] of ramOutbox ?? []) this.outboxInRam.set(id, o);
    for (const cancel of this.retransmits.values()) cancel();
    this.retransmits.clear();
    for (const h of this.hosted.values()) {
      h.cancelTimer?.();
      h.actor.stop();
    }
    this.hosted.clear();
    this.rehydrate();
    if (swept) {
      // The sweep did not fit either: a smaller one at once, down to one record; then one per interval.
      if (this.pruneLimit > 1) this.pruneLimit = Math.max(1, this.pruneLimit >> 1);
      else this.nextSweepAt = this.clock.now() + INBOX_SWEEP_EVERY_MS;
    }
    for (const id of this.outboxInRam.keys()) this.scheduleRetransmit(id, 0);
    void this.runLocal(() => this.onReloaded()).catch((e) => this.log.error('reload hook failed', { error: String(e) }));
  }

  /**
   * Prunes the inbox (inside the running write transaction): answered
   * records older than the retention window whose migration is settled,
   * and, while the inbox holds more than INBOX_RECORDS_MAX, the oldest
   * answered ones whatever their age. Unanswered records are work in
   * progress and stay. Each pruned record raises its sender's floor.
   */
  private sweep(now: number): number {
    const store = this.store;
    const cutoff = now - this.timing.inboxRetentionMs;
    // At the cap or past it, the oldest answered records make room for the next request.
    let over = this.inboxRecords - this.inboxRecordsMax + 1;
    const prune: Array<{ key: [number, string]; rec: InboxEntry | undefined }> = [];
    let scanned = 0;
    let stoppedAt: [number, string] | undefined;
    for (const { key } of store.inboxByTime.getRange(this.sweepFrom ? { start: this.sweepFrom } : {})) {
      if (key[0] > cutoff && over <= 0) break;
      if (prune.length >= this.pruneLimit || scanned >= INBOX_SWEEP_SCAN_MAX) {
        stoppedAt = key;
        break;
      }
      scanned++;
      const rec = store.inbox.get(key[1]);
      if (!rec) {
        prune.push({ key, rec }); // an index entry left without its record
        continue;
      }
      if (rec.replies.length === 0) continue;
      const expired = key[0] <= cutoff && (rec.mig === undefined || this.isSettled(rec.mig));
      if (!expired && over <= 0) continue;
      over--;
      prune.push({ key, rec });
    }
    for (const { key, rec } of prune) {
      store.inboxByTime.remove(key);
      if (!rec) continue;
      store.inbox.remove(key[1]);
      this.inboxRecords--;
      const sent = parseRequestId(key[1]);
      if (sent && sent.seq > (store.inboxFloors.get(rec.from) ?? -1)) store.inboxFloors.put(rec.from, sent.seq);
    }
    if (prune.length > 0) this.log.debug('inbox pruned', { records: prune.length, left: this.inboxRecords });
    this.sweepFrom = stoppedAt;
    this.nextSweepAt = stoppedAt ? now : now + INBOX_SWEEP_EVERY_MS;
    return prune.length;
  }

  /** A sweep's transaction committed: space it freed lets new work in again, and the next sweep may be larger. */
  private sweepCommitted(pruned: number): void {
    if (pruned === 0) return;
    this.failedCommitAt = undefined;
    this.pruneLimit = Math.min(INBOX_PRUNES_PER_SWEEP_MAX, this.pruneLimit * 2);
  }

  /** Whether the store passed its budget (STORE_FULL_FRACTION), measured at most once per batch. */
  private storeFull(): boolean {
    if (this.failedCommitAt !== undefined) {
      if (this.clock.now() < this.failedCommitAt + STORE_FULL_AFTER_FAILED_COMMIT_MS) return true;
      this.failedCommitAt = undefined;
    }
    if (this.fullMeasured?.batch !== this.batches) this.fullMeasured = { batch: this.batches, full: this.store.isFull };
    return this.fullMeasured.full;
  }

  /**
   * One turn's own transaction ('sync' stores). Kept as its own async step:
   * the simulator's seeds replay byte for byte only if the turns of parties
   * woken at the same virtual instant interleave at the same promise ticks
   * as when their traces were recorded.
   */
  private async commitAlone(writes: () => void): Promise<void> {
    await this.store.commit(writes);
  }

  /**
   * A turn in memory: validate, deduplicate, run the machines. Nothing is
   * written or sent yet; what the turn sends at once goes to its `immediate`
   * list, spoken after the batch is on disk.
   */
  private process(job: Job): Done {
    const started = performance.now();
    const turn = new Turn();
    const d: Done = { job, turn, started, workMs: 0, fatal: false, empty: true, immediate: [] };
    this.turn = turn;
    // A 'sync' store commits each turn alone, before anything else runs: sends go out as they are made, as they always did.
    if (this.store.commitMode === 'async') this.sink = d.immediate;
    // The crypto a turn does is this party's (issue 7's counters; no effect on behaviour).
    const charged = enterParty(this.id);
    try {
      if (job.kind === 'message') this.handleBytes(job.peer, job.bytes, turn);
      else if (job.kind === 'local') d.result = job.run();
      else if (this.hosted.has(job.actorKey)) this.dispatch(job.actorKey, job.event);
      this.drainInternal(turn);
    } catch (e) {
      d.failure = e;
    } finally {
      this.turn = null;
      leaveParty(charged);
    }
    try {
      if (d.failure !== undefined) {
        if (turn.dirty || !(d.failure instanceof ProtocolError)) {
          d.fatal = true;
          return d;
        }
        if (job.kind === 'message') this.refuseRaw(job.peer, job.bytes, d.failure, turn.received);
        // An answer nobody wanted any more (the machine moved on) still answered its request: stop sending it.
        if (turn.acked.length > 0) {
          const acked = [...turn.acked];
          d.empty = false;
          d.writes = () => {
            for (const id of acked) this.forgetRequest(id);
          };
        }
        return d;
      }
      if (turn.touched.size > 0) {
        this.turn = turn;
        try {
          this.onCommitting([...turn.touched]);
        } finally {
          this.turn = null;
        }
      }
      // A request answered fresh, that changed nothing and only answered itself, writes nothing (not even the
      // sequence number its reply used: a reply's id is never looked up, so one used again after a crash is harmless).
      const inbound = turn.inbound;
      const freshAnswer = (o: OutMessage) => inbound !== undefined && !turn.recordInbound && o.env.corr === inbound.id && kindOf(o.env.type) === 'reply';
      d.empty = !turn.dirty && turn.acked.length === 0 && (!inbound || !turn.recordInbound) && turn.out.every(freshAnswer);
      if (!d.empty) d.writes = this.turnWrites(turn);
      return d;
    } finally {
      this.sink = null;
      d.workMs = performance.now() - started;
    }
  }

  /** Puts a turn's writes into the running transaction (the batch's), so the next turn reads them. */
  private applyTurn(d: Done): void {
    if (this.store.commitMode === 'sync') return; // committed by its own transaction in runBatch
    d.writes?.();
    d.writes = undefined;
  }

  /**
   * After the batch is on disk: the turn speaks (what it deferred, then what
   * its machines sent), its timers are armed and its caller answered. False
   * when a crash was injected here (the caller crashes the party).
   */
  private finish(d: Done, flushed: number): boolean {
    const { turn, job } = d;
    if (d.failure !== undefined) {
      for (const o of d.immediate) this.transmit(o);
      for (const id of turn.acked) this.cancelRetransmit(id);
      if (job.kind === 'local' && !d.answered) job.reject(d.failure);
      return true;
    }
    this.deps.observe?.turn(this.id, flushed - d.started, !d.empty);
    if (this.point('after-persist', turn)) return false;
    const sending = performance.now();
    attributeTo(this.id, () => {
      for (const o of d.immediate) this.transmit(o);
      for (const o of turn.out) {
        this.transmit(o);
        if (kindOf(o.env.type) === 'request') this.scheduleRetransmit(o.env.id, 0);
      }
    });
    this.deps.observe?.work?.(this.id, d.workMs + performance.now() - sending);
    for (const id of turn.acked) this.cancelRetransmit(id);
    if (this.point('after-send', turn)) return false;
    for (const h of turn.touched) {
      const hosted = this.hosted.get(h);
      if (hosted) this.armTimer(hosted);
    }
    for (const fn of turn.after) fn();
    for (const key of turn.touched) {
      const h = this.hosted.get(key);
      if (h && h.timerAt === undefined && atRest(h.actor)) this.retire(h);
    }
    if (job.kind === 'local') job.resolve(d.result);
    return true;
  }

  /** Runs the turn-point hook; true when it asks for a crash here. */
  private point(point: TurnPoint, turn: Turn): boolean {
    try {
      this.deps.onTurnPoint?.(this.id, point, turn.info);
      return false;
    } catch (e) {
      if (e instanceof CrashSignal) return true;
      throw e;
    }
  }

  private async crash(job: Job): Promise<void> {
    this.log.warn('crashed (fault injection)', {});
    if (job.kind === 'local') job.reject(new ProtocolError('UNEXPECTED', `${this.id} crashed`));
    await this.kill();
  }

  /**
   * A crash: everything in RAM is dropped (queue, actors, session keys,
   * timers, links closed without a word); only what LMDB committed remains,
   * for a new runtime on the same store to rehydrate.
   */
  kill(): Promise<void> {
    this.killing ??= this.die();
    return this.killing;
  }

  private killing: Promise<void> | undefined;

  private async die(): Promise<void> {
    this.stopped = true;
    this.crashed = true;
    for (const job of this.queue) if (job.kind === 'local') job.reject(new ProtocolError('UNEXPECTED', `${this.id} crashed`));
    this.queue = [];
    for (const cancel of this.retransmits.values()) cancel();
    this.retransmits.clear();
    for (const h of this.hosted.values()) {
      h.cancelTimer?.();
      h.actor.stop();
    }
    for (const link of this.links.values()) link.close('crashed');
    this.links.clear();
    await this.store.close();
  }

  /** True once this runtime was killed (a restart needs a new runtime on the same store). */
  crashed = false;

  private handleBytes(peer: string, bytes: Uint8Array, turn: Turn): void {
    this.deps.tap?.(this.id, 'in', peer, bytes);
    const env = decodeEnvelope(bytes);
    turn.received = env;
    turn.info = { type: env.type, step: env.step ?? (env.type === 'frame' ? stepOfSession(env.body.session) : undefined) };
    if (env.to !== this.id) {
      throw new ProtocolError('BAD_ENVELOPE', `message is addressed to ${env.to}, but this is ${this.id}`);
    }
    const remote = this.remoteIds.get(peer) ?? peer;
    if (env.from !== remote) {
      throw new ProtocolError('BAD_SENDER', `message says it is from ${env.from}, but arrived on the link of ${remote}`);
    }
    this.deps.observe?.message(this.id, 'in', env.type, bytes.length);
    this.log.debug('message', { peer, type: env.type, id: env.id, corr: env.corr, mig: env.mig, step: env.step, item: env.item, bytes: bytes.length });
    const kind = kindOf(env.type);
    if (env.corr !== undefined) {
      // Only an answer on the link the request went out on settles it: ids count up, and any peer could guess one.
      const sent = this.pendingRequest(env.corr);
      const pending = sent?.peer === peer ? sent : undefined;
      if (pending) turn.acked.push(env.corr);
      else if (kind === 'reply') {
        // Answer to a request already answered (a duplicate reply): nothing to do.
        this.log.debug('duplicate reply ignored', { type: env.type, corr: env.corr });
        return;
      }
      if (pending?.env.type === 'frame' && (env.type === 'frame.ack' || env.type === 'error')) {
        // A hop acknowledged (or refused: a stale session) a frame we relayed; that is the runtime's business only.
        if (env.type === 'error') this.log.debug('frame refused by the next hop', { peer, code: env.body.code, reason: env.body.message });
        return;
      }
    }
    if (kind === 'notice') {
      // A duplicated frame must not reach a session twice (it would restart a handshake or fail a counter).
      // Per sender: an id one peer sent must not silence the same id from another.
      const noticeKey = `${env.from}\u0000${env.id}`;
      if (this.recentNotices.has(noticeKey)) {
        this.log.debug('duplicate notice dropped', { type: env.type, id: env.id });
        return;
      }
      this.recentNotices.add(noticeKey);
      if (this.recentNotices.size > NOTICE_IDS_REMEMBERED_MAX) {
        const oldest = this.recentNotices.values().next().value;
        if (oldest !== undefined) this.recentNotices.delete(oldest);
      }
    }
    if (kind === 'request') {
      // The id names its sender and a sequence number: what the floor below is compared with.
      const sent = parseRequestId(env.id);
      if (!sent || sent.from !== env.from) {
        throw new ProtocolError('BAD_ENVELOPE', `request id ${env.id} is not "${env.from}#<sequence number>" (optionally ".<16 hex digits>" after it)`);
      }
      const fresh = this.requestsAnsweredFresh.has(env.type);
      // Work in progress goes on when the store is full or the inbox at its limit: a relayed session frame belongs to a session already open.
      const inProgress = env.type === 'frame';
      if (!fresh) {
        const seen = this.store.inbox.get(env.id);
        if (seen && seen.from !== env.from) {
          throw new ProtocolError('BAD_ENVELOPE', `request id ${env.id} was already used by another sender`);
        }
        if (seen) {
          this.log.debug('duplicate request answered from the inbox', { type: env.type, id: env.id });
          for (const reply of seen.replies) this.transmit({ peer, env: reply });
          return;
        }
        // Not in the inbox, and at or below what was pruned of this sender: answered long ago. Never applied again.
        const floor = this.store.inboxFloors.get(env.from);
        if (floor !== undefined && sent.seq <= floor) {
          throw new ProtocolError('STALE_REQUEST', `request ${env.id} was answered long ago and its record is gone; send a new request`);
        }
        if (this.inboxRecords >= this.inboxRecordsMax && !inProgress) {
          this.nextSweepAt = 0; // the next batch prunes what it can
          throw new ProtocolError('BUSY', `${this.id} holds ${this.inboxRecords} requests, its limit; it answers repeats and takes new requests once older ones are answered`);
        }
      }
      if (!inProgress && this.storeFull()) {
        throw new ProtocolError('STORE_FULL', `${this.id}'s store is full; it serves work in progress and refuses new work`);
      }
      const steer = this.deps.steer?.beforeRequest?.(this.id, env);
      if (steer?.holdMs !== undefined) {
        const copy = new Uint8Array(bytes);
        this.clock.schedule(this.clock.now() + steer.holdMs, () => this.enqueue({ kind: 'message', peer, bytes: copy }));
        return;
      }
      if (steer?.fail) throw new ProtocolError(steer.fail.code, steer.fail.message);
      turn.inbound = env;
      turn.recordInbound = !fresh;
    }
    this.onEnvelope(env, peer);
    // Every hop acknowledges a frame it accepted, so the sender stops sending it again.
    if (env.type === 'frame') this.reply(env, 'frame.ack', {});
  }

  /** Error reply for a message that changed nothing. Never answers a reply (no error ping-pong). */
  private refuseRaw(peer: string, bytes: Uint8Array, error: unknown, received?: AnyEnvelope): void {
    const err = error instanceof ProtocolError ? error : new ProtocolError('INTERNAL', 'internal error');
    const head = received ?? peekHeader(bytes);
    const type = head.type;
    if (type === 'error') return;
    if (received && kindOf(received.type) === 'reply') {
      this.log.warn('reply refused', { peer, type, code: err.code, reason: err.message });
      return;
    }
    this.log.warn('message refused', { peer, type, code: err.code, reason: err.message });
    const reply: Envelope<'error'> = {
      v: PROTOCOL_VERSION,
      id: `${this.id}#e${this.rngId()}`,
      corr: head.id,
      from: this.id,
      to: this.remoteIds.get(peer) ?? peer,
      type: 'error',
      body: err.toBody(),
    };
    if (!head.id) delete reply.corr;
    this.transmit({ peer, env: reply as AnyEnvelope });
  }

  private rngId(n = 6): string {
    const b = this.rng.bytes(n);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  private drainInternal(turn: Turn): void {
    let n = 0;
    while (turn.internal.length > 0) {
      if (++n > INTERNAL_EVENTS_PER_TURN_MAX) throw new Error(`${this.id}: more than ${INTERNAL_EVENTS_PER_TURN_MAX} internal events in one turn`);
      const { key, event } = turn.internal.shift()!;
      // An event raised earlier in this turn that an earlier one overtook (two providers refusing at once): nothing to do.
      const snap = this.actorOf(key)?.getSnapshot();
      if (snap && (snap.status !== 'active' || !snap.can(event as EventObject))) {
        this.log.debug('internal event no longer expected', { actor: key, event: event.type });
        continue;
      }
      this.dispatch(key, event);
    }
  }

  /** A turn's durable record, as one function to run inside a write transaction: snapshots, outbox, inbox and replies, acks, seq. */
  private turnWrites(turn: Turn): () => void {
    const store = this.store;
    const seq = this.seq;
    const at = this.clock.now();
    const snapshots: Array<[string, PersistedActor]> = [];
    const discarded: string[] = [];
    for (const key of turn.touched) {
      const h = this.hosted.get(key);
      if (!h) continue;
      const kind = this.kinds[h.kind]!;
      if (kind.discardWhenDone && h.actor.getSnapshot().status === 'done') {
        discarded.push(key);
        continue;
      }
      // A relayed frame moves no machine: its actor's snapshot (whose context grows with the items) is already on disk.
      const mark = markOf(h.actor);
      if (sameMark(h.written, mark)) continue;
      h.written = mark;
      snapshots.push([key, { machine: h.kind, version: kind.version, snapshot: h.actor.getPersistedSnapshot() }]);
    }
    const inbound = turn.inbound && turn.recordInbound ? turn.inbound : undefined;
    return () => {
      for (const w of turn.writes) w();
      for (const [key, value] of snapshots) store.snapshots.put(key, value);
      for (const key of discarded) store.snapshots.remove(key);
      if (inbound) {
        store.inbox.put(inbound.id, { from: inbound.from, type: inbound.type, replies: [], at, ...(inbound.mig !== undefined ? { mig: inbound.mig } : {}) });
        store.inboxByTime.put([at, inbound.id], 1);
        this.inboxRecords++;
      }
      for (const o of turn.out) {
        if (kindOf(o.env.type) === 'request') {
          if (this.requestsKeptOffDisk.has(o.env.type)) this.outboxInRam.set(o.env.id, o);
          else store.outbox.put(o.env.id, o);
        }
        if (o.env.corr !== undefined) {
          const rec = store.inbox.get(o.env.corr);
          // The first reply that names a migration ties the record to it (migrate.out is answered with its id).
          const mig = rec?.mig ?? o.env.mig;
          if (rec) store.inbox.put(o.env.corr, { ...rec, replies: [...rec.replies, o.env], ...(mig !== undefined ? { mig } : {}) });
        }
      }
      for (const id of turn.acked) this.forgetRequest(id);
      store.meta.put('seq', seq);
    };
  }

  /**
   * Requests are sent again until answered (a lost request or a lost reply;
   * the receiver answers a duplicate from its inbox), with backoff up to the
   * cap. The schedule is derived from the durable outbox, so it survives a
   * restart.
   */
  private readonly retransmits = new Map<string, () => void>();

  private scheduleRetransmit(id: string, attempt: number): void {
    if (this.stopped) return;
    this.retransmits.get(id)?.();
    const delay = Math.min(this.timing.retransmitCapMs, this.timing.retransmitMs * 2 ** Math.min(attempt, 20));
    const cancel = this.clock.schedule(this.clock.now() + delay, () => {
      this.retransmits.delete(id);
      if (this.stopped || this.store.isClosed) return;
      const entry = this.pendingRequest(id);
      if (!entry) return;
      this.log.debug('request sent again', { id, type: entry.env.type, attempt: attempt + 1 });
      this.transmit(entry);
      this.scheduleRetransmit(id, attempt + 1);
    });
    this.retransmits.set(id, cancel);
  }

  private cancelRetransmit(id: string): void {
    this.retransmits.get(id)?.();
    this.retransmits.delete(id);
  }

  private transmit(o: OutMessage): void {
    if (this.sink) {
      this.sink.push(o);
      return;
    }
    const link = this.links.get(o.peer);
    if (!link || !link.isOpen) {
      this.log.debug('no link; message waits', { peer: o.peer, type: o.env.type });
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeEnvelope(o.env);
    } catch (e) {
      this.log.error('could not encode an outbound message', { type: o.env.type, error: String(e) });
      return;
    }
    this.deps.tap?.(this.id, 'out', o.peer, bytes);
    this.deps.observe?.message(this.id, 'out', o.env.type, bytes.length);
    link.send(bytes);
  }

  // ---- actors --------------------------------------------------------------------

  private current(): Turn {
    if (!this.turn) throw new Error(`${this.id}: this operation needs a running turn`);
    return this.turn;
  }

  private restore(key: string, value: PersistedActor): void {
    const kind = this.kindOfSnapshot(key, value);
    // A finished actor stays on disk only (see `retire`).
    if ((value.snapshot as { status?: string }).status === 'done') return;
    const actor = createActor(kind.machine, {
      snapshot: value.snapshot as never,
      inspect: this.inspector(key),
    });
    const hosted: Hosted = { key, kind: value.machine, actor };
    actor.on('*', (e: EventObject) => this.intent(key, e));
    hosted.written = markOf(actor); // what the store holds
    this.hosted.set(key, hosted);
    actor.start();
  }

  private kindOfSnapshot(key: string, value: PersistedActor): MachineKind {
    const kind = this.kinds[value.machine];
    if (!kind) throw new Error(`${this.id}: snapshot ${key} is of unknown machine "${value.machine}"`);
    if (kind.version !== value.version) {
      throw new Error(
        `${this.id}: snapshot ${key} was written by ${value.machine} v${value.version}, this build runs v${kind.version}; refusing to guess`,
      );
    }
    return kind;
  }

  /**
   * An actor at rest (finished, or in a state tagged 'rest': one that only
   * answers repeats, such as a decision taken) leaves RAM once the turn that
   * brought it there is on disk: a long-running party holds the actors at
   * work, not one per migration it ever served. Its snapshot stays in the
   * store; `actorOf` reads it back when asked, and an event for it brings it
   * back (`dispatch`), to rest again after that turn.
   */
  private retire(h: Hosted): void {
    h.cancelTimer?.();
    h.actor.stop();
    this.hosted.delete(h.key);
  }

  /** A retired actor, read back from its snapshot: for looking at, not hosted (`dispatch` hosts it again). */
  private retired(key: string): Actor<AnyStateMachine> | undefined {
    const value = this.store.snapshots.get(key);
    if (!value) return undefined;
    return createActor(this.kindOfSnapshot(key, value).machine, { snapshot: value.snapshot as never });
  }

  private inspector(key: string): ((e: InspectionEvent) => void) | undefined {
    const inspect = this.deps.inspect;
    if (!inspect) return undefined;
    return (e) => inspect(this.id, key, e);
  }

  private intent(key: string, e: EventObject): void {
    const turn = this.current();
    try {
      this.onIntent(key, e as never, turn);
    } catch (error) {
      // Caught here, or XState throws it again on a timer, outside the turn, while the turn commits as if it had run.
      turn.intentFailure ??= { error };
    }
  }

  /** Fails the turn with what an intent handler threw during the machine's step. */
  private raiseIntentFailure(turn: Turn): void {
    const f = turn.intentFailure;
    if (!f) return;
    turn.intentFailure = undefined;
    throw f.error;
  }

  /** Creates and starts an actor in this turn; its entry actions run now and their emits are handled. */
  protected spawn(key: string, kind: string, input: unknown): Actor<AnyStateMachine> {
    const turn = this.current();
    if (this.hosted.has(key) || this.store.snapshots.get(key)) throw new Error(`${this.id}: actor ${key} exists`);
    const k = this.kinds[kind];
    if (!k) throw new Error(`${this.id}: unknown machine kind ${kind}`);
    const actor = createActor(k.machine, { input: input as never, inspect: this.inspector(key) });
    this.hosted.set(key, { key, kind, actor });
    actor.on('*', (e: EventObject) => this.intent(key, e));
    turn.dirty = true;
    turn.touched.add(key);
    actor.start();
    this.raiseIntentFailure(turn);
    return actor;
  }

  /** Whether the actor under `key` is not at work: finished, resting (see `retire`), or gone. */
  protected isAtRest(key: string): boolean {
    const h = this.hosted.get(key);
    return !h || atRest(h.actor);
  }

  /** The actor under `key`: live, or at rest and read back from the store (see `retire`). */
  protected actorOf(key: string): Actor<AnyStateMachine> | undefined {
    return this.hosted.get(key)?.actor ?? this.retired(key);
  }

  /**
   * The keys of the actors in RAM (at work); with `finished`, of those at rest on disk too. An
   * actor at rest only answers repeats, so a broadcast to the live ones misses nothing.
   */
  protected actorKeys(kind?: string, finished = false): string[] {
    const live = [...this.hosted.values()].filter((h) => !kind || h.kind === kind).map((h) => h.key);
    if (!finished) return live;
    const done: string[] = [];
    for (const { key, value } of this.store.snapshots.getRange()) {
      if ((!kind || value.machine === kind) && !this.hosted.has(key)) done.push(key);
    }
    return [...done, ...live];
  }

  /**
   * Sends an event to an actor. If the actor's current state has no
   * transition for it, nothing changes and the caller gets UNEXPECTED: an
   * unexpected message is refused, never silently swallowed.
   */
  protected dispatch(key: string, event: MachineEvent): void {
    const turn = this.current();
    let h = this.hosted.get(key);
    if (!h) {
      // Resting on disk: back into RAM, if the event can move it at all.
      const value = this.store.snapshots.get(key);
      if (!value) throw new ProtocolError('NOT_FOUND', `${this.id} has no ${key}`);
      const resting = this.retired(key)!.getSnapshot();
      if (resting.status === 'active' && resting.can(event as EventObject)) {
        this.restore(key, value);
        h = this.hosted.get(key);
      }
    }
    const snap = (h?.actor ?? this.retired(key))!.getSnapshot();
    if (!h || snap.status !== 'active' || !snap.can(event as EventObject)) {
      throw new ProtocolError(
        'UNEXPECTED',
        `${event.type} is not expected by ${key} in state ${JSON.stringify(snap.value)}`,
      );
    }
    turn.dirty = true;
    turn.touched.add(key);
    if (!this.log.enabled('info')) {
      h.actor.send(event as EventObject);
      this.raiseIntentFailure(turn);
      return;
    }
    const before = JSON.stringify(snap.value);
    h.actor.send(event as EventObject);
    this.raiseIntentFailure(turn);
    const after = JSON.stringify(h.actor.getSnapshot().value);
    if (after !== before) this.log.info('state changed', { actor: key, event: event.type, from: before, to: after });
  }

  /** Like dispatch, but reports whether the event applied instead of throwing. */
  protected tryDispatch(key: string, event: MachineEvent): boolean {
    const snap = this.actorOf(key)?.getSnapshot();
    if (!snap) return false;
    if (snap.status !== 'active' || !snap.can(event as EventObject)) return false;
    this.dispatch(key, event);
    return true;
  }

  /** Queues an event for an actor after the current one (a runtime result fed back to a machine). */
  protected raise(key: string, event: MachineEvent): void {
    this.current().internal.push({ key, event });
  }

  /** Handles one event a machine emitted: an outbound message or a named effect. */
  protected abstract onIntent(key: string, intent: never, turn: Turn): void;

  /** Handles a validated, deduplicated envelope; throws ProtocolError before any change to refuse it. */
  protected abstract onEnvelope(env: AnyEnvelope, peer: string): void;

  // ---- effects inside a turn ------------------------------------------------------

  /** Queues a durable write into this turn's transaction. */
  protected write(fn: () => void): void {
    const turn = this.current();
    turn.dirty = true;
    turn.writes.push(fn);
  }

  /**
   * Gives up the requests of `type` this party sent to `peer` and still waits
   * on: they will never be answered (the session they belonged to failed
   * with the peer's link), and a peer that never comes back must not hold
   * outbox records forever. In a turn.
   */
  protected abandonRequestsTo(peer: string, type: MessageType): void {
    const ids: string[] = [];
    for (const { key, value } of this.store.outbox.getRange()) if (value.peer === peer && value.env.type === type) ids.push(key);
    if (ids.length === 0) return;
    this.write(() => {
      for (const id of ids) this.store.outbox.remove(id);
    });
    this.afterTurn(() => {
      for (const id of ids) this.cancelRetransmit(id);
    });
  }

  /** Runs after this turn is on disk and its messages are sent. */
  protected afterTurn(fn: () => void): void {
    this.current().after.push(fn);
  }

  protected send<T extends MessageType>(peer: string, type: T, body: BodyOf<T>, header: Header = {}): Envelope<T> {
    const turn = this.current();
    if (header.corr !== undefined && type !== 'error' && this.deps.steer?.replaceReply) {
      const probe = { v: PROTOCOL_VERSION, id: '-', from: this.id, to: peer, type, ...header, body } as AnyEnvelope;
      const err = this.deps.steer.replaceReply(this.id, probe);
      if (err) return this.send(peer, 'error', err, header) as unknown as Envelope<T>;
    }
    const env = {
      v: PROTOCOL_VERSION,
      id: this.requestIdsUnguessable && kindOf(type) === 'request' ? `${this.id}#${++this.seq}.${this.rngId(8)}` : `${this.id}#${++this.seq}`,
      from: this.id,
      to: this.remoteIds.get(peer) ?? peer,
      type,
      ...header,
      body,
    } as Envelope<T>;
    turn.out.push({ peer, env: env as AnyEnvelope });
    return env;
  }

  protected reply<T extends MessageType>(to: AnyEnvelope, type: T, body: BodyOf<T>, header: Omit<Header, 'corr'> = {}): Envelope<T> {
    return this.send(this.peerOf(to.from), type, body, { mig: to.mig, step: to.step, item: to.item, ...header, corr: to.id });
  }

  /** The link name for a party id (the id itself unless a link aliases it). */
  private peerOf(remoteId: string): string {
    for (const [peer, id] of this.remoteIds) if (id === remoteId) return peer;
    return remoteId;
  }

  protected replyError(to: AnyEnvelope, err: ProtocolError): void {
    this.reply(to, 'error', err.toBody());
  }

  /** The request currently being handled, if any (to answer it later, keep its id). */
  protected get inbound(): AnyEnvelope | undefined {
    return this.current().inbound;
  }

  /** The request this party sent that `corr` answers, while it is still unanswered (in the outbox). */
  protected requestOf(corr: string | undefined): AnyEnvelope | undefined {
    return corr === undefined ? undefined : this.pendingRequest(corr)?.env;
  }

  /** The link a request this party received came in on (to answer it, or relay for it, later). */
  protected peerOfRequest(id: string): string {
    // The record may be pruned (answered long ago); the id itself names its sender.
    const from = this.store.inbox.get(id)?.from ?? parseRequestId(id)?.from;
    if (from === undefined) throw new Error(`${this.id}: no received request ${id}`);
    return this.peerOf(from);
  }

  /** Looks up a request this party received earlier, by id (to answer it now). */
  protected receivedRequest(id: string): { from: string; type: string } | undefined {
    const rec = this.store.inbox.get(id);
    return rec ? { from: rec.from, type: rec.type } : undefined;
  }

  // ---- timers as data -----------------------------------------------------------------

  private armTimer(h: Hosted): void {
    const snap = h.actor.getSnapshot();
    const timer = (snap.context as { timer?: TimerData } | undefined)?.timer;
    const at = snap.status === 'active' ? timer?.atMs : undefined;
    if (at === h.timerAt) return;
    h.cancelTimer?.();
    h.cancelTimer = undefined;
    h.timerAt = at;
    if (at === undefined || !timer) return;
    const event = { type: timer.event };
    h.cancelTimer = this.clock.schedule(at, () => {
      h.timerAt = undefined;
      h.cancelTimer = undefined;
      this.enqueue({ kind: 'timer', actorKey: h.key, event });
    });
  }

  // ---- introspection ------------------------------------------------------------------

  /** Every actor's current state value, the finished ones' from the store, for status pages and tests. */
  states(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const { key, value } of this.store.snapshots.getRange()) {
      if (!this.hosted.has(key)) out[key] = (value.snapshot as { value?: unknown }).value;
    }
    for (const h of this.hosted.values()) out[h.key] = h.actor.getSnapshot().value;
    return out;
  }
}

export type { Turn };

/** Session ids are "<migration>:<step>:<n>": a relayed frame belongs to the step that opened its session. */
function stepOfSession(session: string): Step | undefined {
  const step = session.split(':')[1];
  return step && (STEPS as readonly string[]).includes(step) ? (step as Step) : undefined;
}
