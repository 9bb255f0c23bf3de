/**
 * The party runtime's shared types (architecture.md, "The party runtime"):
 * what a party is built from (RuntimeDeps), what it hosts (MachineKind),
 * what it may be told to do at named points of a turn (TurnPoint), and the
 * injection points around its messages (Interceptor).
 *
 * src/runtime is a layer below src/actors: it knows envelopes, stores,
 * links and machines, never a particular party.
 */
import type { AnyStateMachine, InspectionEvent } from 'xstate';
import type { Clock } from '../clock.ts';
import type { Rng } from '../crypto/index.ts';
import type { Refusal } from '../protocol/errors.ts';
import type { Logger } from '../log.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { Timing } from '../timing.ts';
import type { Step } from '../protocol/steps.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { CommitPolicy } from './queue.ts';

export interface RuntimeDeps {
  id: string;
  store: PartyStore;
  clock: Clock;
  rng: Rng;
  log: Logger;
  /** XState inspection records of every actor of this party (run recorder, live page). */
  inspect?: (party: string, actorKey: string, event: InspectionEvent) => void;
  /** Sees every envelope this party receives or sends, encoded (the run recorder; a check that no secret crosses a link). */
  tap?: (party: string, direction: 'in' | 'out', peer: string, bytes: Uint8Array) => void;
  /** Counters for metrics: every message handled or sent, every turn's duration. */
  observe?: RuntimeObserver;
  /** Timeouts and retry delays (DEFAULT_TIMING unless the deployment or the simulator runs faster). */
  timing?: Timing;
  /** How many turns share a commit (GROUP_COMMIT unless set; the simulator commits one turn at a time). */
  commitPolicy?: CommitPolicy;
  /** Sees the requests this party takes and the messages it sends, and may change what happens to them. */
  intercept?: Interceptor;
  /** Called at named points of every turn; fault injection hooks in here. */
  onTurnPoint?: (party: string, point: TurnPoint, info: TurnInfo) => void;
}

export type TurnPoint = 'before-persist' | 'after-persist' | 'after-send';

/** What a turn is about, as far as the turn-point hooks care: the message type and protocol step. */
export interface TurnInfo {
  type?: string;
  step?: Step;
}

/**
 * Thrown by an onTurnPoint hook to crash the party right there (fault
 * injection): what the turn committed stays in LMDB, nothing else survives.
 */
export class CrashSignal extends Error {
  override readonly name = 'CrashSignal';
}

/** What an interceptor decides about a new request: refuse it with this error, or hold it back this many ms (then it arrives again). */
export interface InboundVerdict {
  refuse?: Refusal;
  holdMs?: number;
}

/**
 * An injection point around a party's messages: fault injection and
 * model-based steering (src/testing/steering.ts) plug in here. Unset in a
 * deployment; each hook is optional.
 */
export interface Interceptor {
  /** A new request, past deduplication and before its handler runs. */
  inbound?(party: string, env: AnyEnvelope): InboundVerdict | undefined;
  /** A message a turn sends, before it is recorded: returns the envelope to record and send instead. */
  outbound?(party: string, env: AnyEnvelope): AnyEnvelope | undefined;
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
  /** An unanswered request was sent again (valmove_requests_resent_total). Optional. */
  resent?(party: string): void;
  /** A machine's step is tried again after a failure (a RETRY_DUE timer fired; valmove_step_retries_total). Optional. */
  retried?(party: string): void;
  /** A migration started: once, after the commit that wrote it (the server; valmove_migrations_started_total). Optional. */
  migrationStarted?(party: string): void;
  /** A migration ended with `outcome`, after the commit; `seconds` from its start when the store knows it. Optional. */
  migrationEnded?(party: string, outcome: string, seconds: number | undefined): void;
  /** A user's failed logins locked the account (the server; valmove_login_lockouts_total). Optional. */
  lockedOut?(party: string): void;
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

/** An envelope on its way to the link named `peer`. */
export interface OutMessage {
  peer: string;
  env: AnyEnvelope;
}

/** An event for a hosted machine: the runtime checks it against the machine with `can()` before sending. */
export type MachineEvent = { type: string; [field: string]: unknown };

/** A machine context that waits keeps its deadline as data (architecture.md: timers are data). */
export interface TimerData {
  atMs: number;
  event: string;
}

/** Request ids are "<sender>#<seq>", or "<sender>#<seq>.<16 hex>" where ids are unguessable (see MessageIds). */
const REQUEST_ID = /^(.+)#(\d{1,15})(?:\.[0-9a-f]{16})?$/;

/** The sender and sequence number a request id names, or undefined when it is not a request id. */
export function parseRequestId(id: string): { from: string; seq: number } | undefined {
  const m = REQUEST_ID.exec(id);
  return m ? { from: m[1]!, seq: Number(m[2]) } : undefined;
}

/** Hex of `n` random bytes (error and request id suffixes). */
export function randomHex(rng: Rng, n: number): string {
  return Array.from(rng.bytes(n), (x) => x.toString(16).padStart(2, '0')).join('');
}
