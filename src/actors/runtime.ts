/**
 * PartyRuntime: what every party (chip, terminal, server, SAMs) extends to
 * become a durable, talking actor (architecture.md, "The party runtime").
 *
 * The runtime itself is in src/runtime/, in parts (the queue and its group
 * commit, the inbox, the outbox, the actor host, timers, links); this class
 * is the face a party sees: its public life (start, stop, links), the hooks
 * it fills in (its machines, its handlers, its rules), and a few read-only
 * views. What a handler does inside a turn, it does through the turn's
 * TurnContext (send, reply, write, spawn, dispatch, raise), passed to it.
 */
import type { Actor, AnyStateMachine } from 'xstate';
import type { Clock } from '../clock.ts';
import type { Rng, TrustVerdict } from '../crypto/index.ts';
import type { Logger } from '../log.ts';
import { INBOX_RECORDS_MAX } from '../runtime/inbox.ts';
import { Runtime, type PartyHooks } from '../runtime/runtime.ts';
import type { TurnContext } from '../runtime/turn.ts';
import type { MachineKind, RuntimeDeps } from '../runtime/types.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { Timing } from '../timing.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { Link } from '../transport/link.ts';

export { INTERNAL_EVENTS_PER_TURN_MAX } from '../runtime/engine.ts';
export {
  INBOX_PRUNES_PER_SWEEP_MAX,
  INBOX_RECORDS_MAX,
  INBOX_SWEEP_EVERY_MS,
  INBOX_SWEEP_SCAN_MAX,
  NOTICE_IDS_REMEMBERED_MAX,
  STORE_FULL_AFTER_FAILED_COMMIT_MS,
} from '../runtime/inbox.ts';
export { BATCH_WORK_MS_MAX, GROUP_COMMIT, ONE_TURN_PER_COMMIT, QUEUE_JOBS_MAX, TURNS_PER_COMMIT_MAX, type CommitPolicy } from '../runtime/queue.ts';
export type { TurnContext } from '../runtime/turn.ts';
export {
  CrashSignal,
  parseRequestId,
  type Header,
  type InboundVerdict,
  type Interceptor,
  type MachineEvent,
  type MachineKind,
  type RuntimeDeps,
  type RuntimeObserver,
  type TimerData,
  type TurnInfo,
  type TurnPoint,
} from '../runtime/types.ts';

export abstract class PartyRuntime {
  readonly id: string;
  protected readonly store: PartyStore;
  protected readonly clock: Clock;
  protected readonly rng: Rng;
  protected readonly log: Logger;
  protected readonly timing: Timing;
  private readonly runtime: Runtime;

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
   * Request types this party never writes to disk: kept in RAM and sent again while the party runs, lost
   * with it (a login proof, which would log in whoever read the file). Their sender must cope with the loss.
   */
  protected readonly requestsKeptOffDisk: ReadonlySet<string> = new Set();

  /**
   * Request types this party answers without an inbox record: their handler
   * only reads, or is safe to run again (a repeat is simply answered anew).
   * What a stranger may send before it has proven a key belongs here, so that
   * nothing it sends is written to disk (protocol.md §4.8).
   */
  protected readonly requestsAnsweredFresh: ReadonlySet<string> = new Set();

  /** Whether this party drives chip sessions (a SAM): each one's last frame is sent again until answered (runtime/resends.ts). */
  protected readonly resendsFrames: boolean = false;
  /** Whether an answer that only moves one actor in RAM is absorbed, not written (engine.ts, `absorbs`). */
  protected readonly absorbsAnswers: boolean = true;

  /** INBOX_RECORDS_MAX unless a party lowers it. */
  protected readonly inboxRecordsMax: number = INBOX_RECORDS_MAX;

  constructor(deps: RuntimeDeps) {
    this.runtime = new Runtime(deps, this.hooks());
    this.id = deps.id;
    this.store = deps.store;
    this.clock = deps.clock;
    this.rng = deps.rng;
    this.log = this.runtime.log;
    this.timing = this.runtime.timing;
  }

  /** The party's side of the runtime; read when called, as a subclass sets its fields after this constructor. */
  private hooks(): PartyHooks {
    return {
      kinds: () => this.kinds,
      requestIdsUnguessable: () => this.requestIdsUnguessable,
      keptOffDisk: (type) => this.requestsKeptOffDisk.has(type),
      answeredFresh: (type) => this.requestsAnsweredFresh.has(type),
      resendsFrames: () => this.resendsFrames,
      absorbsAnswers: () => this.absorbsAnswers,
      inboxRecordsMax: () => this.inboxRecordsMax,
      isSettled: (mig) => this.isSettled(mig),
      admitMessage: (peer) => this.admitMessage(peer),
      onEnvelope: (env, peer, turn) => this.onEnvelope(env, peer, turn),
      onIntent: (key, intent, turn) => this.onIntent(key, intent as never, turn),
      onCommitting: (touched, turn) => this.onCommitting(touched, turn),
      onReloaded: (turn) => this.onReloaded(turn),
      onLinkAttached: (peer) => this.onLinkAttached(peer),
      onLinkClosed: (peer, reason) => this.onLinkClosed(peer, reason),
    };
  }

  // ---- life ------------------------------------------------------------------------------

  /** Rehydrates every actor from its snapshot and re-arms the timers kept in their contexts. */
  async start(): Promise<void> {
    await this.runtime.start();
  }

  /** Finishes queued work, then closes links and the store. */
  stop(): Promise<void> {
    return this.runtime.stop();
  }

  /**
   * A crash: everything in RAM is dropped (queue, actors, session keys,
   * timers, links closed without a word); only what LMDB committed remains,
   * for a new runtime on the same store to rehydrate.
   */
  kill(): Promise<void> {
    return this.runtime.kill();
  }

  /** True once this runtime was killed (a restart needs a new runtime on the same store). */
  get crashed(): boolean {
    return this.runtime.crashed;
  }

  get isStopped(): boolean {
    return this.runtime.isStopped;
  }

  /** Resolves when the queue is empty and no turn is running. */
  idle(): Promise<void> {
    return this.runtime.idle();
  }

  /** A turn is running or jobs are queued (the simulator waits for every party to be idle before it delivers more). */
  get busy(): boolean {
    return this.runtime.busy;
  }

  /** Jobs waiting in this party's queue (a gauge for /metrics). */
  get queueLength(): number {
    return this.runtime.queueLength;
  }

  /** This party's clock, ms (a tool linked to it numbers its requests from it, as a new store does). */
  now(): number {
    return this.clock.now();
  }

  /**
   * Whether a message this party sends would be sent again after a crash: in its outbox (or kept off disk on
   * purpose, as a login proof is), or a reply kept in the inbox record of the request it answers. The simulator's
   * persist-then-speak check asks this of every new message sent outside a turn.
   */
  remembers(id: string, corr?: string): boolean {
    return this.runtime.remembers(id, corr);
  }

  /** Every actor's current state value, the resting ones' from the store (status pages). */
  states(): Record<string, unknown> {
    return this.runtime.host.states();
  }

  /** Runs fn as one turn of this party (a user command or an operator action). */
  protected runLocal<T>(fn: (turn: TurnContext) => T): Promise<T> {
    return this.runtime.runLocal(fn);
  }

  // ---- links -------------------------------------------------------------------------------

  /**
   * Binds a link to a peer name, and resends what the outbox holds for it.
   * `remoteId` is the party id at the other end when the name is an alias.
   */
  attach(peer: string, link: Link, remoteId: string = peer): void {
    this.runtime.attach(peer, link, remoteId);
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
    this.runtime.links.close(peer, reason);
  }

  /** Peers with an open link (for /healthz). */
  openLinks(): string[] {
    return this.runtime.links.open();
  }

  protected hasLink(peer: string): boolean {
    return this.runtime.links.has(peer);
  }

  /** The key the peer on this link proved in its channel handshake (a name is only a claim; this is the proof). */
  protected peerKeyOf(peer: string): string | undefined {
    return this.runtime.links.keyOf(peer);
  }

  /** Why the channel to `peer` was refused, if its handshake failed (e.g. the peer does not trust us). */
  protected linkRefusal(peer: string): { code: string; message: string } | undefined {
    return this.runtime.links.refusal(peer);
  }

  // ---- actors (read-only; a turn moves them) -----------------------------------------------

  /** The actor under `key`: live, or at rest and read back from the store. */
  protected actorOf(key: string): Actor<AnyStateMachine> | undefined {
    return this.runtime.host.actorOf(key);
  }

  /** The keys of the actors in RAM (at work); with `finished`, of those at rest on disk too. */
  protected actorKeys(kind?: string, finished = false): string[] {
    return this.runtime.host.keys(kind, finished);
  }

  /** Whether the actor under `key` is not at work: finished, resting, or gone. */
  protected isAtRest(key: string): boolean {
    return this.runtime.host.isAtRest(key);
  }

  // ---- hooks a party fills in ----------------------------------------------------------------

  /** Handles a validated, deduplicated envelope; throws ProtocolError before any change to refuse it. */
  protected abstract onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void;

  /** Handles one event a machine emitted: an outbound message or a named effect. */
  protected abstract onIntent(key: string, intent: never, turn: TurnContext): void;

  /** At the end of a turn, before its commit, with the actors whose snapshot it writes: may add writes (e.g. an index of actor states). */
  protected onCommitting(_changed: string[], _turn: TurnContext): void {}

  /**
   * Run as a turn after a failed commit made the party reload its actors
   * from the store in place (as a restart would): fail what lived in RAM
   * only (open chip or SAM sessions), as `start` does after a restart.
   */
  protected onReloaded(_turn: TurnContext): void {}

  /**
   * Whether the migration `mig` is settled, so the inbox records that name
   * it may be pruned once the retention window has passed (protocol.md §4.5:
   * a repeat is answered until the migration is settled). True unless a party
   * that tracks migrations says otherwise.
   */
  protected isSettled(_mig: string): boolean {
    return true;
  }

  /** Whether a message from this peer is taken at all, before it is decoded (a dropped one is as if the network lost it). */
  protected admitMessage(_peer: string): boolean {
    return true;
  }

  /** A new connection took the peer's name: whatever the old connection had earned (a login) is gone. */
  protected onLinkAttached(_peer: string): void {}

  protected onLinkClosed(peer: string, reason: string): void {
    (peer.startsWith('terminal/') ? this.log.debug : this.log.warn).call(this.log, 'link closed', { peer, reason }); // docs/deploying.md#logs
  }
}
