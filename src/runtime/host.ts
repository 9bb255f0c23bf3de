/**
 * The actor host: a party's machines as running XState actors, each under a
 * key, restored from and written to the party's snapshots.
 *
 * An actor at rest (finished, or in a state tagged 'rest': one that only
 * answers repeats, such as a decision taken) leaves RAM once the turn that
 * brought it there is on disk: a long-running party holds the actors at
 * work, not one per migration it ever served. Its snapshot stays in the
 * store; `actorOf` reads it back when asked, and an event that can move it
 * brings it back (`dispatch`), to rest again after that turn.
 */
import { createActor, type Actor, type AnyStateMachine, type EventObject, type InspectionEvent } from 'xstate';
import { ProtocolError } from '../protocol/errors.ts';
import { stateName } from '../protocol/stateName.ts';
import type { Logger } from '../log.ts';
import type { PersistedActor, PartyStore } from '../store/party.store.ts';
import type { MachineEvent, MachineKind, RuntimeDeps, TimerData } from './types.ts';

export interface HostDeps {
  party: string;
  store: PartyStore;
  log: Logger;
  /** The machines the party hosts, by kind name (read when needed: a party declares them after construction). */
  kinds(): Record<string, MachineKind>;
  /** Every event an actor emits (an outbound message or a named effect), as it emits it. */
  emitted(key: string, event: EventObject): void;
  /** An actor is about to move (a spawn's start, an event's send): past this point its turn has changed state. */
  moving(key: string): void;
  inspect?: RuntimeDeps['inspect'];
}

interface Hosted {
  kind: string;
  actor: Actor<AnyStateMachine>;
  /** What the last snapshot written for this actor was made of (`snapshotsOf` skips an unchanged one). */
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

/** A turn's snapshot writes: the snapshots that changed, and the finished actors whose kind is discarded. */
export interface SnapshotWrites {
  put: Array<[string, PersistedActor]>;
  remove: string[];
}

/** The tag of states whose snapshot is not worth a commit: what they hold is lost with RAM anyway (see snapshotsOf). */
export const VOLATILE_TAG = 'volatile';
/**
 * The tag of states reached only by relaying a session's frames (the server's migration between a session's
 * open and its answer). A turn that only relayed (moved by a notice, with nothing else to write) does not write
 * an actor in such a state: it changed nothing a restart needs. The state it was written in has the session's
 * request outstanding, and the session's resent frames move it on again.
 */
export const RELAY_TAG = 'relay';

/** Finished, or in a state that only answers repeats (tagged 'rest'): nothing for it to do in RAM. */
export function atRest(actor: Actor<AnyStateMachine>): boolean {
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

export class ActorHost {
  private readonly hosted = new Map<string, Hosted>();

  constructor(private readonly deps: HostDeps) {}

  /** Hosts every actor the store holds that is not finished; those at rest with no deadline are retired at once. */
  restoreAll(): void {
    for (const { key, value } of this.deps.store.snapshots.getRange()) this.restore(key, value);
    for (const [key, h] of [...this.hosted]) {
      if (atRest(h.actor) && (h.actor.getSnapshot().context as { timer?: TimerData } | undefined)?.timer == null) this.retire(key);
    }
  }

  /** The keys of the actors in RAM. */
  liveKeys(): string[] {
    return [...this.hosted.keys()];
  }

  /** The actor in RAM under `key`, if any. */
  live(key: string): Actor<AnyStateMachine> | undefined {
    return this.hosted.get(key)?.actor;
  }

  /** Whether the actor under `key` is in RAM, at work (active, not at rest), with a snapshot written before. */
  workingAndWritten(key: string): boolean {
    const h = this.hosted.get(key);
    return h !== undefined && h.written !== undefined && h.actor.getSnapshot().status === 'active' && !atRest(h.actor);
  }

  /** The actor under `key`: live, or at rest and read back from the store. */
  actorOf(key: string): Actor<AnyStateMachine> | undefined {
    return this.hosted.get(key)?.actor ?? this.retired(key);
  }

  /** Whether the actor under `key` is not at work: finished, resting, or gone. */
  isAtRest(key: string): boolean {
    const h = this.hosted.get(key);
    return !h || atRest(h.actor);
  }

  /** The keys of the actors in RAM (at work); with `finished`, of those at rest on disk too. */
  keys(kind?: string, finished = false): string[] {
    const live = [...this.hosted].filter(([, h]) => !kind || h.kind === kind).map(([key]) => key);
    if (!finished) return live;
    const done: string[] = [];
    for (const { key, value } of this.deps.store.snapshots.getRange()) {
      if ((!kind || value.machine === kind) && !this.hosted.has(key)) done.push(key);
    }
    return [...done, ...live];
  }

  /** Creates and starts an actor; its entry actions run now, and what they emit is handled. */
  spawn(key: string, kind: string, input: unknown): Actor<AnyStateMachine> {
    const { party, store } = this.deps;
    if (this.hosted.has(key) || store.snapshots.get(key)) throw new Error(`${party}: actor ${key} exists`);
    const k = this.deps.kinds()[kind];
    if (!k) throw new Error(`${party}: unknown machine kind ${kind}`);
    const actor = createActor(k.machine, { input: input as never, inspect: this.inspector(key) });
    this.hosted.set(key, { kind, actor });
    actor.on('*', (e: EventObject) => this.deps.emitted(key, e));
    this.deps.moving(key);
    actor.start();
    return actor;
  }

  /**
   * Sends an event to an actor, bringing it back from rest if the event can
   * move it. If the actor's current state has no transition for it, nothing
   * changes and the caller gets UNEXPECTED: an unexpected message is
   * refused, never silently swallowed.
   */
  dispatch(key: string, event: MachineEvent): void {
    const h = this.wake(key, event);
    const snap = (h?.actor ?? this.retired(key))!.getSnapshot();
    if (!h || snap.status !== 'active' || !snap.can(event as EventObject)) {
      throw new ProtocolError('UNEXPECTED', `${event.type} is not expected by ${key} in state ${JSON.stringify(snap.value)}`);
    }
    this.deps.moving(key);
    if (!this.deps.log.enabled('info')) {
      h.actor.send(event as EventObject);
      return;
    }
    // Log fields are values, not JSON inside JSON: "from":"sourcePhase.lockingSource".
    const before = stateName(snap.value);
    h.actor.send(event as EventObject);
    const after = stateName(h.actor.getSnapshot().value);
    if (after !== before) this.deps.log.info('state changed', { actor: key, event: event.type, from: before, to: after });
  }

  /** Whether the actor under `key` exists, is active and takes `event` now. */
  accepts(key: string, event: MachineEvent): boolean {
    const snap = this.actorOf(key)?.getSnapshot();
    return snap !== undefined && snap.status === 'active' && snap.can(event as EventObject);
  }

  /**
   * The snapshots a turn that moved these actors writes (an unchanged one is skipped: a relayed frame moves
   * nothing). `relayOnly`: the turn only relayed a notice (see RELAY_TAG).
   */
  snapshotsOf(touched: Iterable<string>, relayOnly = false): SnapshotWrites {
    const out: SnapshotWrites = { put: [], remove: [] };
    for (const key of touched) {
      const h = this.hosted.get(key);
      if (!h) continue;
      const kind = this.deps.kinds()[h.kind]!;
      if (kind.discardWhenDone && h.actor.getSnapshot().status === 'done') {
        out.remove.push(key);
        continue;
      }
      const mark = markOf(h.actor);
      if (sameMark(h.written, mark)) continue;
      // A state tagged 'volatile' (a chip session in progress, whose keys live in RAM only) is not written once
      // the actor has a snapshot: a restart loses the session anyway, and finds the actor as it was before it,
      // with the deadline that ends it.
      if (h.written !== undefined && h.actor.getSnapshot().hasTag(VOLATILE_TAG)) continue;
      if (relayOnly && h.written !== undefined && h.actor.getSnapshot().hasTag(RELAY_TAG)) continue;
      h.written = mark;
      out.put.push([key, { machine: h.kind, version: kind.version, snapshot: h.actor.getPersistedSnapshot() }]);
    }
    return out;
  }

  /** Stops an actor and drops it from RAM; its snapshot stays on disk. */
  retire(key: string): void {
    this.hosted.get(key)?.actor.stop();
    this.hosted.delete(key);
  }

  /** Stops every actor (a stop, a crash); with `drop`, forgets them too (a reload reads them back from the store). */
  stopAll(drop = false): void {
    for (const h of this.hosted.values()) h.actor.stop();
    if (drop) this.hosted.clear();
  }

  /** Every actor's current state value, the resting ones' from the store. */
  states(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const { key, value } of this.deps.store.snapshots.getRange()) {
      if (!this.hosted.has(key)) out[key] = (value.snapshot as { value?: unknown }).value;
    }
    for (const [key, h] of this.hosted) out[key] = h.actor.getSnapshot().value;
    return out;
  }

  /** The hosted actor for `key`; one resting on disk comes back into RAM if `event` can move it. */
  private wake(key: string, event: MachineEvent): Hosted | undefined {
    const h = this.hosted.get(key);
    if (h) return h;
    const value = this.deps.store.snapshots.get(key);
    if (!value) throw new ProtocolError('NOT_FOUND', `${this.deps.party} has no ${key}`);
    const resting = this.retired(key)!.getSnapshot();
    if (resting.status !== 'active' || !resting.can(event as EventObject)) return undefined;
    this.restore(key, value);
    return this.hosted.get(key);
  }

  private restore(key: string, value: PersistedActor): void {
    const kind = this.kindOfSnapshot(key, value);
    // A finished actor stays on disk only.
    if ((value.snapshot as { status?: string }).status === 'done') return;
    const actor = createActor(kind.machine, { snapshot: value.snapshot as never, inspect: this.inspector(key) });
    actor.on('*', (e: EventObject) => this.deps.emitted(key, e));
    this.hosted.set(key, { kind: value.machine, actor, written: markOf(actor) });
    actor.start();
  }

  /** A retired actor, read back from its snapshot: for looking at, not hosted (`dispatch` hosts it again). */
  private retired(key: string): Actor<AnyStateMachine> | undefined {
    const value = this.deps.store.snapshots.get(key);
    if (!value) return undefined;
    return createActor(this.kindOfSnapshot(key, value).machine, { snapshot: value.snapshot as never });
  }

  private kindOfSnapshot(key: string, value: PersistedActor): MachineKind {
    const { party } = this.deps;
    const kind = this.deps.kinds()[value.machine];
    if (!kind) throw new Error(`${party}: snapshot ${key} is of unknown machine "${value.machine}"`);
    if (kind.version !== value.version) {
      throw new Error(`${party}: snapshot ${key} was written by ${value.machine} v${value.version}, this build runs v${kind.version}; refusing to guess`);
    }
    return kind;
  }

  private inspector(key: string): ((e: InspectionEvent) => void) | undefined {
    const inspect = this.deps.inspect;
    if (!inspect) return undefined;
    return (e) => inspect(this.deps.party, key, e);
  }
}
