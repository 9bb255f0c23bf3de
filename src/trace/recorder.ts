/**
 * The run recorder: turns the two hooks a party runtime offers
 * (RuntimeDeps.tap, every encoded envelope in and out; RuntimeDeps.inspect,
 * XState inspection) into run records (records.ts) and hands them to its
 * sinks (sinks.ts).
 *
 * What a record may hold is decided here, once: header fields, sizes, the
 * step a progress notice or a session frame names, state names and event
 * types. Never a body, a frame, a context or an event payload (protocol.md
 * §4.4: a recording is shown to people and sent to a live page).
 *
 * A recorder never throws into the runtime that calls it: a tap it cannot
 * decode records nothing (and is counted).
 */
import type { InspectionEvent } from 'xstate';
import type { RuntimeDeps } from '../actors/runtime.ts';
import { AREA_KEYS, type AreaState } from '../machines/area.machine.ts';
import { isStep } from '../protocol/steps.ts';
import { decodeEnvelope } from '../transport/envelope.ts';
import type { EnvelopeRecord, RunRecord, RunStartRecord, StateRecord } from './records.ts';

/** Where records go (a JSON Lines file, a live page's WebSocket feed). */
export interface RecordSink {
  /** Takes one record; never throws, never blocks on I/O. The first record a sink gets is the run header. */
  write(record: RunRecord): void;
  /** Flushes what it holds (bounded in time) and releases its file or socket. */
  close(): Promise<void>;
}

/**
 * Bytes one run file may grow to; beyond it records are dropped. A 20-item
 * demo writes about 3 MiB; `valmove trace` reads a file whole, so this also
 * bounds what it reads.
 */
export const RUN_FILE_BYTES_MAX = 256 * 1024 * 1024;
/** Leaf state paths kept per state record (a parallel machine has one per region; more is a bug). */
export const STATE_PATHS_MAX = 64;
/** Characters kept of a state path or an event type (names, never payloads; a bound all the same). */
export const STATE_NAME_CHARS_MAX = 200;

export interface RecorderOptions {
  source: RunStartRecord['source'];
  /** The party (or process) whose records these are; '*' when one process holds every party. */
  party: string;
  sinks: RecordSink[];
  /** Monotonic milliseconds (performance.now by default); `t` of every record counts from the first call. */
  now?: () => number;
  /** Wall-clock milliseconds at the start (Date.now by default): merging files of several processes uses it. */
  wallNow?: () => number;
}

export interface RecorderCounts {
  envelopes: number;
  states: number;
  /** Taps whose bytes did not decode as an envelope: recorded as nothing. */
  undecodable: number;
}

export interface Recorder {
  readonly header: RunStartRecord;
  /** For RuntimeDeps.tap / SystemOptions.envelopeTap. */
  readonly tap: NonNullable<RuntimeDeps['tap']>;
  /** For RuntimeDeps.inspect / SystemOptions.inspect. */
  readonly inspect: NonNullable<RuntimeDeps['inspect']>;
  readonly counts: RecorderCounts;
  /** Flushes and closes every sink; records after close are dropped. */
  close(): Promise<void>;
}

/**
 * The session names a relayed frame carries are `<mig>:<step>:<n>`
 * (migration.logic.ts): labels, not secrets. (A registration's are
 * `<reg>:register:<n>`, and its envelopes carry `mig: <reg>` as well.)
 */
function sessionLabels(session: string): { mig?: string; step?: string } {
  const [mig, step] = session.split(':');
  if (!mig || !isStep(step)) return {};
  return { mig, step };
}

/** Bytes a base64url string without padding decodes to, without decoding it. */
export function base64Bytes(chars: number): number {
  return Math.floor((chars * 3) / 4);
}

/** Builds one envelope record from the encoded bytes, or undefined when they do not decode. */
export function envelopeRecord(t: number, direction: 'in' | 'out', party: string, bytes: Uint8Array): EnvelopeRecord | undefined {
  let env: ReturnType<typeof decodeEnvelope>;
  try {
    env = decodeEnvelope(bytes);
  } catch {
    return undefined;
  }
  const r: EnvelopeRecord = { kind: 'envelope', t, direction, party, id: env.id, from: env.from, to: env.to, type: env.type, bytes: bytes.length };
  if (env.corr !== undefined) r.corr = env.corr;
  if (env.mig !== undefined) r.mig = env.mig;
  if (env.step !== undefined) r.step = env.step;
  if (env.item !== undefined) r.item = env.item;
  if (env.type === 'progress') {
    // The step a progress notice reports is where that step starts (protocol labels; the text is not kept).
    r.step = env.body.step.slice(0, STATE_NAME_CHARS_MAX);
    r.mig ??= env.body.mig;
    if (env.body.more?.length) r.announces = [r.step, ...env.body.more.map((l) => l.step.slice(0, STATE_NAME_CHARS_MAX))];
  } else if (env.type === 'frame') {
    if (env.body.progress?.length) r.announces = env.body.progress.map((l) => l.step.slice(0, STATE_NAME_CHARS_MAX));
    // The frame is opaque ciphertext: its size is kept, never its data.
    r.frameBytes = base64Bytes(env.body.data.length);
    const labels = sessionLabels(env.body.session);
    r.mig ??= labels.mig;
    r.step ??= labels.step;
  }
  return r;
}

/** Active leaf state paths, dot-joined from the machine root: `migration.sourcePhase.uploading`. */
export function leafPaths(root: string, value: unknown): string[] {
  const out: string[] = [];
  const walk = (prefix: string, v: unknown): void => {
    if (out.length >= STATE_PATHS_MAX) return;
    if (typeof v === 'string') out.push(`${prefix}.${v}`.slice(0, STATE_NAME_CHARS_MAX));
    else if (v && typeof v === 'object' && Object.keys(v).length > 0) {
      for (const [k, sub] of Object.entries(v)) walk(`${prefix}.${k}`, sub);
    } else out.push(prefix.slice(0, STATE_NAME_CHARS_MAX));
  };
  walk(root, value);
  return out;
}

/** A state record for an `@xstate.snapshot` inspection event (undefined for any other kind). */
export function stateRecord(t: number, party: string, actorKey: string, e: InspectionEvent): StateRecord | undefined {
  if (e.type !== '@xstate.snapshot') return undefined;
  const snapshot = e.snapshot as { value?: unknown; machine?: { id?: unknown } };
  if (!('value' in snapshot)) return undefined;
  const machine = typeof snapshot.machine?.id === 'string' ? snapshot.machine.id : '?';
  const r: StateRecord = { kind: 'state', t, party, actor: actorKey, machine, states: leafPaths(machine, snapshot.value) };
  const type = (e.event as { type?: unknown } | undefined)?.type;
  if (typeof type === 'string') r.event = type.slice(0, STATE_NAME_CHARS_MAX);
  if (machine === 'area') addAreaFields(r, e.event);
  return r;
}

/**
 * A chip area's record also says which key slots its state holds (the area
 * invariants: AREA_KEYS), and the migration and step its command named:
 * protocol labels, as an envelope header carries them. Nothing else of the event.
 */
function addAreaFields(r: StateRecord, event: unknown): void {
  const state = r.states[0]?.split('.')[1];
  if (state && Object.hasOwn(AREA_KEYS, state)) r.keys = AREA_KEYS[state as AreaState];
  const { mig, step } = (event ?? {}) as { mig?: unknown; step?: unknown };
  if (typeof mig === 'string' && mig.length > 0) r.mig = mig.slice(0, STATE_NAME_CHARS_MAX);
  if (typeof step === 'string' && isStep(step)) r.step = step;
}

export function createRecorder(opts: RecorderOptions): Recorder {
  const now = opts.now ?? (() => performance.now());
  const t0 = now();
  const header: RunStartRecord = { kind: 'run', v: 1, source: opts.source, party: opts.party, startedAt: new Date((opts.wallNow ?? Date.now)()).toISOString() };
  const counts: RecorderCounts = { envelopes: 0, states: 0, undecodable: 0 };
  // The last state seen per actor: a snapshot whose value did not change is not a move.
  const lastStates = new Map<string, string>();
  let closed = false;
  const emit = (r: RunRecord) => {
    if (closed) return;
    for (const s of opts.sinks) s.write(r);
  };
  // Microsecond resolution: many envelopes of one embedded turn share a millisecond.
  const at = () => Math.round((now() - t0) * 1000) / 1000;
  emit(header);
  return {
    header,
    counts,
    tap(party, direction, _peer, bytes) {
      try {
        const r = envelopeRecord(at(), direction, party, bytes);
        if (!r) {
          counts.undecodable++;
          return;
        }
        counts.envelopes++;
        emit(r);
      } catch {
        counts.undecodable++;
      }
    },
    inspect(party, actorKey, e) {
      try {
        const r = stateRecord(at(), party, actorKey, e);
        if (!r) return;
        const key = `${party}\u0000${actorKey}`;
        const joined = r.states.join('\u0000');
        if (lastStates.get(key) === joined) return;
        lastStates.set(key, joined);
        counts.states++;
        emit(r);
      } catch {
        // inspection must never break the actor it watches
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(opts.sinks.map((s) => s.close()));
    },
  };
}
