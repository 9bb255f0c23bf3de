/**
 * A turn, as a party's handlers see it: the TurnContext. Everything a
 * handler does through it (send, reply, write, spawn, dispatch, raise)
 * lands in the turn's record and takes effect only when the turn's
 * transaction is on disk: messages are sent, timers armed, `afterTurn`
 * callbacks run. A context used after its turn ended throws.
 */
import type { Actor, AnyStateMachine } from 'xstate';
import type { Clock } from '../clock.ts';
import type { Rng } from '../crypto/index.ts';
import type { ProtocolError } from '../protocol/errors.ts';
import type { PartyStore } from '../store/party.store.ts';
import { PROTOCOL_VERSION, type AnyEnvelope, type Envelope } from '../transport/envelope.ts';
import { kindOf, type BodyOf, type MessageType } from '../transport/messages.ts';
import type { ActorHost } from './host.ts';
import type { Inbox } from './inbox.ts';
import type { Links } from './links.ts';
import type { Outbox } from './outbox.ts';
import { parseRequestId, randomHex, type Header, type Interceptor, type MachineEvent, type OutMessage, type TurnInfo } from './types.ts';

/** What a party's handlers may do during a turn. */
export interface TurnContext {
  /** The request being handled, if the turn is one (to answer it later, keep its id). */
  readonly inbound: AnyEnvelope | undefined;
  /** The party's clock, ms. */
  now(): number;
  /** Sends a message once the turn is on disk; a request stays in the outbox until it is answered. */
  send<T extends MessageType>(peer: string, type: T, body: BodyOf<T>, header?: Header): Envelope<T>;
  /** Answers a received message (same migration, step and item unless `header` says otherwise). */
  reply<T extends MessageType>(to: AnyEnvelope, type: T, body: BodyOf<T>, header?: Omit<Header, 'corr'>): Envelope<T>;
  replyError(to: AnyEnvelope, err: ProtocolError): void;
  /** The request this party sent that `corr` answers, while it is still unanswered (in the outbox). */
  requestOf(corr: string | undefined): AnyEnvelope | undefined;
  /** The link a request this party received came in on (to answer it, or relay for it, later). */
  peerOfRequest(id: string): string;
  /**
   * Gives up the requests of `type` this party sent to `peer` and still
   * waits on: they will never be answered (the session they belonged to
   * failed with the peer's link), and a peer that never comes back must not
   * hold outbox records forever.
   */
  abandonRequestsTo(peer: string, type: MessageType): void;
  /** Queues a durable write into this turn's transaction. */
  write(fn: () => void): void;
  /** Runs after this turn is on disk and its messages are sent. */
  afterTurn(fn: () => void): void;
  /** Creates and starts an actor in this turn; its entry actions run now and their emits are handled. */
  spawn(key: string, kind: string, input: unknown): Actor<AnyStateMachine>;
  /** Sends an event to an actor; UNEXPECTED (and nothing changes) when its state has no transition for it. */
  dispatch(key: string, event: MachineEvent): void;
  /** Like dispatch, but reports whether the event applied instead of throwing. */
  tryDispatch(key: string, event: MachineEvent): boolean;
  /** Queues an event for an actor after the current one (a runtime result fed back to a machine). */
  raise(key: string, event: MachineEvent): void;
}

/** What a turn did, for the runtime to commit and then carry out. */
export class TurnRecord {
  readonly writes: Array<() => void> = [];
  readonly out: OutMessage[] = [];
  /** Actors the turn moved (or spawned). */
  readonly touched = new Set<string>();
  /** Requests of ours the turn received answers to. */
  readonly acked: string[] = [];
  readonly after: Array<() => void> = [];
  readonly internal: Array<{ key: string; event: MachineEvent }> = [];
  inbound?: AnyEnvelope;
  /** False for a request answered fresh: it leaves no inbox record. */
  recordInbound = true;
  received?: AnyEnvelope;
  /** What an intent handler threw while a machine ran (XState would rethrow it later, outside the turn). */
  intentFailure?: { error: unknown };
  dirty = false;
  info: TurnInfo = {};
}

/**
 * Message ids: "<party>#<seq>", the sequence counting up across restarts
 * (kept in the store's meta with each turn); with `unguessable`, a request
 * id carries 64 random bits after it. A receiver answers a repeated request
 * id from its inbox, to whoever sends it on a link of the same name: where
 * names are not authenticated (a terminal's, at the server) the id itself
 * must be what proves the repeat comes from the sender.
 */
export class MessageIds {
  private seq = 0;
  private noticeSeq = 0;
  private noticeTag: string | undefined;

  constructor(
    private readonly party: string,
    private readonly rng: Rng,
    private readonly unguessable: () => boolean,
  ) {}

  /** Where a (re)started party counts from. */
  start(store: PartyStore, clock: Clock): void {
    // A new store counts from the clock, not from 0: a sender whose store was wiped must not number its
    // requests below the floor its receivers keep for it (their STALE_REQUEST check).
    this.seq = (store.meta.get('seq') as number | undefined) ?? clock.now();
    this.noticeTag = undefined;
    this.noticeSeq = 0;
  }

  next(type: MessageType): string {
    const kind = kindOf(type);
    if (kind === 'notice') {
      // A notice (a relayed frame, a progress line) is never written: its id counts in RAM under a tag drawn at
      // start, so a party that restarts below its last notice still never repeats one (a receiver drops a repeat).
      this.noticeTag ??= randomHex(this.rng, 4);
      return `${this.party}#n${this.noticeTag}.${++this.noticeSeq}`;
    }
    const id = `${this.party}#${++this.seq}`;
    return this.unguessable() && kind === 'request' ? `${id}.${randomHex(this.rng, 8)}` : id;
  }

  /** The sequence number last used (written with the turn that used it). */
  get current(): number {
    return this.seq;
  }
}

/** The parts a turn acts on. */
export interface TurnParts {
  party: string;
  clock: Clock;
  ids: MessageIds;
  links: Pick<Links, 'remoteOf' | 'peerOf'>;
  outbox: Pick<Outbox, 'pending' | 'waitingFor' | 'abandon' | 'cancel'>;
  inbox: Pick<Inbox, 'senderOf'>;
  host: Pick<ActorHost, 'spawn' | 'dispatch' | 'accepts'>;
  intercept?: Interceptor;
}

/** The TurnContext of one turn, over its record. */
export class Turn implements TurnContext {
  readonly record = new TurnRecord();
  private open = true;

  constructor(private readonly parts: TurnParts) {}

  /** The turn is over: its context no longer acts. */
  end(): void {
    this.open = false;
  }

  /** Lets the runtime use the context again (the commit hook runs after the handlers). */
  reopen(): void {
    this.open = true;
  }

  get inbound(): AnyEnvelope | undefined {
    return this.live().inbound;
  }

  now(): number {
    return this.parts.clock.now();
  }

  send<T extends MessageType>(peer: string, type: T, body: BodyOf<T>, header: Header = {}): Envelope<T> {
    const record = this.live();
    const { party, ids, links, intercept } = this.parts;
    const env = { v: PROTOCOL_VERSION, id: ids.next(type), from: party, to: links.remoteOf(peer), type, ...header, body } as AnyEnvelope;
    const sent = intercept?.outbound?.(party, env) ?? env;
    record.out.push({ peer, env: sent });
    return sent as Envelope<T>;
  }

  reply<T extends MessageType>(to: AnyEnvelope, type: T, body: BodyOf<T>, header: Omit<Header, 'corr'> = {}): Envelope<T> {
    return this.send(this.parts.links.peerOf(to.from), type, body, { mig: to.mig, step: to.step, item: to.item, ...header, corr: to.id });
  }

  replyError(to: AnyEnvelope, err: ProtocolError): void {
    this.reply(to, 'error', err.toBody());
  }

  requestOf(corr: string | undefined): AnyEnvelope | undefined {
    return corr === undefined ? undefined : this.parts.outbox.pending(corr)?.env;
  }

  peerOfRequest(id: string): string {
    // The record may be pruned (answered long ago); the id itself names its sender.
    const from = this.parts.inbox.senderOf(id) ?? parseRequestId(id)?.from;
    if (from === undefined) throw new Error(`${this.parts.party}: no received request ${id}`);
    return this.parts.links.peerOf(from);
  }

  abandonRequestsTo(peer: string, type: MessageType): void {
    const { outbox } = this.parts;
    const ids = outbox.waitingFor(peer, type);
    if (ids.length === 0) return;
    this.write(() => outbox.abandon(ids));
    this.afterTurn(() => {
      for (const id of ids) outbox.cancel(id);
    });
  }

  write(fn: () => void): void {
    const record = this.live();
    record.dirty = true;
    record.writes.push(fn);
  }

  afterTurn(fn: () => void): void {
    this.live().after.push(fn);
  }

  spawn(key: string, kind: string, input: unknown): Actor<AnyStateMachine> {
    const record = this.live();
    const actor = this.parts.host.spawn(key, kind, input);
    this.raiseIntentFailure(record);
    return actor;
  }

  dispatch(key: string, event: MachineEvent): void {
    const record = this.live();
    this.parts.host.dispatch(key, event);
    this.raiseIntentFailure(record);
  }

  tryDispatch(key: string, event: MachineEvent): boolean {
    if (!this.parts.host.accepts(key, event)) return false;
    this.dispatch(key, event);
    return true;
  }

  raise(key: string, event: MachineEvent): void {
    this.live().internal.push({ key, event });
  }

  /** An actor of this party moved in this turn (called by the host before the actor changes). */
  moved(key: string): void {
    const record = this.live();
    record.dirty = true;
    record.touched.add(key);
  }

  /** Keeps what an intent handler threw during a machine's step, to fail the turn with it once the step is over. */
  failedIntent(error: unknown): void {
    this.record.intentFailure ??= { error };
  }

  private raiseIntentFailure(record: TurnRecord): void {
    const f = record.intentFailure;
    if (!f) return;
    record.intentFailure = undefined;
    throw f.error;
  }

  private live(): TurnRecord {
    if (!this.open) throw new Error(`${this.parts.party}: this operation needs a running turn`);
    return this.record;
  }
}
