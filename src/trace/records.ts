/**
 * What a run records, and what a live page receives: one JSON object per
 * line (a run file is JSON Lines; the live feed sends the same objects as
 * WebSocket text messages). Records hold metadata only — envelope type,
 * sender, receiver, protocol step, sizes, and the names of the states an
 * actor is in — never a body, a key, a password or an item value.
 */

/** The first line of every run file, and the first message of a live feed connection. */
export interface RunStartRecord {
  kind: 'run';
  /** Record format version. */
  v: 1;
  /** What produced the run: 'demo', 'up', or 'party' (one process of a deployment). */
  source: 'demo' | 'up' | 'party';
  /** The party whose process wrote this file ('*' when one process holds every party). */
  party: string;
  /** Wall-clock start, ISO 8601. */
  startedAt: string;
}

/** One envelope, as its sender sent it (direction 'out') or its receiver took it in ('in'). */
export interface EnvelopeRecord {
  kind: 'envelope';
  /** Milliseconds since the run started (the recording process's clock). */
  t: number;
  direction: 'out' | 'in';
  /** The party whose runtime saw it (sender for 'out', receiver for 'in'). */
  party: string;
  /** Envelope header fields. */
  id: string;
  corr?: string;
  from: string;
  to: string;
  type: string;
  /** The header's migration (registrations use it too: reg-…), else the one a `progress` notice or a relayed frame's session names. */
  mig?: string;
  /** The header's step, or for a `progress` notice the step it reports, or for a relayed frame its session's step. */
  step?: string;
  /**
   * The steps a `progress` notice reports (its `more` lines after the first),
   * or the progress lines a frame carries: a server's turn sends its lines
   * for one terminal together (issue 19), each still a step of the trace.
   */
  announces?: string[];
  item?: number;
  /** Size of the encoded envelope, bytes. */
  bytes: number;
  /** Size of the opaque session frame it relays, if it relays one, bytes. */
  frameBytes?: number;
}

/** An actor of a party moved: the state paths it is in now (leaf paths, dot-joined from the machine root). */
export interface StateRecord {
  kind: 'state';
  t: number;
  party: string;
  /** The runtime's key for the actor (e.g. a migration id), or the party's main actor. */
  actor: string;
  /** The machine's id (as in `valmove charts`). */
  machine: string;
  /** Active leaf state paths, e.g. ['migration.sourcePhase.uploading.authenticating']. */
  states: string[];
  /** The event type that caused this move. */
  event?: string;
  /**
   * A chip area's (machine 'area', actor `area:<area>`): which key slots it
   * holds in its state — none, temp, main or both — never a key.
   */
  keys?: 'none' | 'temp' | 'main' | 'both';
  /** A chip area's: the migration and step of the command that moved it (LOCK at S3, FORMAT at S10, …). */
  mig?: string;
  step?: string;
}

export type RunRecord = RunStartRecord | EnvelopeRecord | StateRecord;
