/**
 * From run records to a message sequence grouped by protocol step (the
 * seed's Fig. 3 and Fig. 4, drawn from what happened). Pure: no I/O, so a
 * live page can run it on the records its feed receives.
 *
 * 1. Merge: the records of every segment (one per process run), in causal
 *    order. Each process has its own clock, so a record's time is its
 *    header's wall clock plus its `t`, and a receiver's records never come
 *    before the send they received (a Lamport-style merge: an `in` waits for
 *    its `out`; a segment's later records wait for its earlier ones).
 * 2. One arrow per envelope: the sender's `out` record (a retransmission is
 *    another `out`, another arrow, marked 'retransmission'); an `in` only
 *    when its sender recorded nothing (dedupe by sender and envelope id), or
 *    when it is a copy the receiver got beyond what was sent (another arrow,
 *    marked 'duplicate').
 * 3. Migration: the header's, else that of the request a reply answers, else
 *    that of the reply a request got.
 * 4. Step: a progress notice marks where a step of its migration starts, and
 *    once a migration has progress notices they decide its steps (a frame of
 *    the S7 session that the server relays while it reports S6 is part of S6).
 *    Without notices (the server's file is missing): the header's step, else
 *    the current step of the migration (carried forward); a reply takes its
 *    request's step, whatever its header says (the admin SAM stamps its
 *    identify reply S1 even when a registration asked). Messages outside
 *    any migration: 'register' or 'normal' by their type or session, carried
 *    along the parties that exchange them; else 'other'.
 * 5. Flow: each message's kind of story (flows.ts): a migration, a
 *    registration, an issuing, normal use or other; `include` keeps some.
 */
import { STEP_TABLE } from '../protocol/steps.ts';
import { areaChangesOf, attachAreaChanges, type AreaChange } from './areas.ts';
import { fileIssuingRequests, flowIdsOf, flowKindsOf, isShown, type FlowKind } from './flows.ts';
import type { EnvelopeRecord, RunRecord, RunStartRecord, StateRecord } from './records.ts';

/** Short titles of each step (the protocol table, src/protocol/steps.ts), and of the group of messages outside any. */
export const STEP_TITLES: Readonly<Record<string, string>> = {
  ...Object.fromEntries(STEP_TABLE.map((s) => [s.id, s.title])),
  other: 'outside the protocol steps',
};

/** The step of messages that belong to no step we can tell. */
export const OTHER_STEP = 'other';

/** Requests that start a phase: the user's request comes before the server's first progress notice. */
const STEP_OF_TYPE: Record<string, string> = { 'migrate.out': 'S1', 'migrate.in': 'S9' };
/** Messages outside a migration whose type says what they are. */
const LOOSE_STEP_OF_TYPE: Array<[RegExp, string]> = [
  [/^normal\./, 'normal'],
  [/^(login\.|chip\.register)/, 'register'],
];

export function stepTitle(step: string): string {
  return STEP_TITLES[step] ?? step;
}

/** How a step group is headed in a drawing: `S7 upload item`, or the title alone for a named step (`commit decision`). */
export function stepHeading(step: string): string {
  return /^S\d+$/.test(step) ? `${step} ${stepTitle(step)}` : stepTitle(step);
}

export interface RunSegment {
  /** Where it came from (a file name), for messages. */
  source: string;
  header: RunStartRecord;
  /** Wall-clock ms of the header's startedAt: the segment's `t`s count from here. */
  baseMs: number;
  records: Array<EnvelopeRecord | StateRecord>;
}

/**
 * Splits a flat list of records into segments. A record belongs to the
 * latest header of its own party (several parties' records may interleave:
 * the processes of a deployment appending to one file, or several feeds),
 * else to the latest header ('*': one process with every party). Records
 * before any header form one segment on clock 0.
 */
export function segmentsOf(records: readonly RunRecord[], source = 'records'): RunSegment[] {
  const out: RunSegment[] = [];
  const byParty = new Map<string, RunSegment>();
  let latest: RunSegment | undefined;
  for (const r of records) {
    if (r.kind === 'run') {
      latest = { source, header: r, baseMs: Date.parse(r.startedAt) || 0, records: [] };
      out.push(latest);
      byParty.set(r.party, latest);
      continue;
    }
    let seg = byParty.get(r.party) ?? latest;
    if (!seg) {
      seg = latest = { source, header: { kind: 'run', v: 1, source: 'demo', party: '*', startedAt: new Date(0).toISOString() }, baseMs: 0, records: [] };
      out.push(seg);
    }
    seg.records.push(r);
  }
  return out;
}

export interface SeqMessage {
  /** Milliseconds from the first record of the run. */
  t: number;
  from: string;
  to: string;
  type: string;
  bytes: number;
  frameBytes?: number;
  mig?: string;
  item?: number;
  step: string;
  /** Envelope id (with `from`, unique). */
  id: string;
  /** Set when this arrow is the same envelope again: sent again by its sender, or received again by its receiver. */
  repeat?: Repeat;
}

/** An envelope seen again: its sender sent the same id again, or its receiver got the same id more often than it was sent. */
export type Repeat = 'retransmission' | 'duplicate';

export interface SeqStep {
  step: string;
  title: string;
  messages: SeqMessage[];
  /** The chip areas that moved during this group (areas.ts). */
  areas?: AreaChange[];
}

export interface SeqTotals {
  messages: number;
  bytes: number;
  frameBytes: number;
  /** Step groups in the sequence (a step that recurs, e.g. S4–S8 once per item, counts each time). */
  groups: number;
  /** Distinct steps seen, in the order they first occurred. */
  steps: string[];
  /** The migrations shown (a registration `reg-…` or an issuing `i-…` is not one), then the registrations and issuings shown. */
  migrations: string[];
  registrations: string[];
  issuings: string[];
  /** Arrows marked as the same envelope again. */
  repeats: { retransmissions: number; duplicates: number };
  participants: number;
  /** Taken from the records: envelopes seen in and out, state changes. */
  records: { envelopes: number; states: number };
}

export interface Sequence {
  participants: string[];
  steps: SeqStep[];
  /** Every chip area's moves, in time order (areas.ts): the key swap. */
  areas: AreaChange[];
  totals: SeqTotals;
}

export interface SequenceOptions {
  /** Only this migration's messages. */
  mig?: string;
  /** Envelope types left out of the drawing (they still mark steps), e.g. ['frame', 'progress']. */
  hide?: readonly string[];
  /** Only these kinds of flow (default: every kind). `mig` overrides it: one flow, whatever its kind. */
  include?: readonly FlowKind[];
}

interface Timed {
  r: EnvelopeRecord;
  at: number;
}

/** A drawn arrow: a merged record, and whether it is an envelope seen again. */
interface Arrow extends Timed {
  repeat?: Repeat;
}

const keyOf = (from: string, id: string) => `${from}\u0000${id}`;

/**
 * Step 1: every envelope record of every segment, in an order that respects
 * each segment and each send->receive: the n-th `in` of an envelope waits for
 * its n-th `out` (a retransmission's copy for the retransmission), or for the
 * last one when it got more copies than were sent (a duplicate).
 */
export function mergeSegments(segments: readonly RunSegment[]): Timed[] {
  const queues = segments.map((s) => ({ base: s.baseMs, recs: s.records.filter((r): r is EnvelopeRecord => r.kind === 'envelope'), next: 0, last: -Infinity }));
  const outs = new Map<string, number>();
  for (const q of queues) for (const r of q.recs) if (r.direction === 'out') outs.set(keyOf(r.from, r.id), (outs.get(keyOf(r.from, r.id)) ?? 0) + 1);
  const sentAt = new Map<string, number[]>();
  const received = new Map<string, number>();
  /** When the send an `in` record waits for went out: undefined while it has not; -Infinity when no send was recorded. */
  const waitsFor = (r: EnvelopeRecord): number | undefined => {
    const k = keyOf(r.from, r.id);
    const sends = outs.get(k);
    if (sends === undefined) return -Infinity;
    return sentAt.get(k)?.[Math.min((received.get(k) ?? 0) + 1, sends) - 1];
  };
  const merged: Timed[] = [];
  const total = queues.reduce((n, q) => n + q.recs.length, 0);
  while (merged.length < total) {
    let best = -1;
    let bestAt = Infinity;
    let bestReady = false;
    for (let i = 0; i < queues.length; i++) {
      const q = queues[i]!;
      const r = q.recs[q.next];
      if (!r) continue;
      const sent = r.direction === 'in' ? waitsFor(r) : -Infinity;
      const ready = sent !== undefined;
      const at = Math.max(q.base + r.t, q.last, sent ?? -Infinity);
      // A ready record beats a waiting one; a waiting one goes only when nothing is ready (a cycle of skewed clocks).
      if ((ready && !bestReady) || (ready === bestReady && at < bestAt)) {
        best = i;
        bestAt = at;
        bestReady = ready;
      }
    }
    const q = queues[best]!;
    const r = q.recs[q.next++]!;
    q.last = bestAt;
    const k = keyOf(r.from, r.id);
    if (r.direction === 'out') {
      const sends = sentAt.get(k) ?? [];
      sends.push(bestAt);
      sentAt.set(k, sends);
    } else received.set(k, (received.get(k) ?? 0) + 1);
    merged.push({ r, at: bestAt });
  }
  return merged;
}

/** The participants in protocol order: source chip and terminal, server, admin SAM, migration SAMs, normal SAMs, destination terminal and chip. */
export function orderParticipants(messages: readonly SeqMessage[]): string[] {
  const first = new Map<string, number>();
  const sourceTerminals = new Set<string>();
  const destinationTerminals = new Set<string>();
  const chipOf = new Map<string, string>();
  for (const [i, m] of messages.entries()) {
    for (const p of [m.from, m.to]) if (!first.has(p)) first.set(p, i);
    if (m.type === 'migrate.out') sourceTerminals.add(m.from);
    if (m.type === 'migrate.in') destinationTerminals.add(m.from);
    if (m.from.startsWith('chip/') && m.to.startsWith('terminal/')) chipOf.set(m.from, m.to);
    if (m.to.startsWith('chip/') && m.from.startsWith('terminal/')) chipOf.set(m.to, m.from);
  }
  const side = (p: string): 'source' | 'destination' | undefined => {
    const t = p.startsWith('chip/') ? chipOf.get(p) : p;
    if (t && sourceTerminals.has(t)) return 'source';
    if (t && destinationTerminals.has(t)) return 'destination';
    return undefined;
  };
  const rank = (p: string): number => {
    const chip = p.startsWith('chip/');
    const terminal = p.startsWith('terminal/');
    if (chip || terminal) {
      const s = side(p);
      if (s === 'source') return chip ? 0 : 1;
      if (s === 'destination') return chip ? 9 : 8;
      return chip ? 7.5 : 7;
    }
    if (p === 'server') return 2;
    if (p === 'admin-sam') return 3;
    if (p.startsWith('migration-sam/')) return 4;
    if (p.startsWith('normal-sam/')) return 5;
    return 10;
  };
  return [...first.keys()].sort((a, b) => rank(a) - rank(b) || first.get(a)! - first.get(b)!);
}

/** Builds the sequence: merged, deduplicated, each message with its migration and step, grouped into consecutive step runs. */
export function sequenceOf(input: readonly RunRecord[] | readonly RunSegment[], opts: SequenceOptions = {}): Sequence {
  const segments: readonly RunSegment[] =
    input.length > 0 && 'records' in input[0]! ? (input as readonly RunSegment[]) : segmentsOf(input as readonly RunRecord[]);
  const merged = mergeSegments(segments);
  const records = { envelopes: merged.length, states: segments.reduce((n, s) => n + s.records.filter((r) => r.kind === 'state').length, 0) };
  const arrows = arrowsOf(merged);
  let t0 = Infinity;
  for (const x of merged) t0 = Math.min(t0, x.at);
  const all = messagesOf(arrows, migrationsOf(arrows), t0);
  fileIssuingRequests(all);
  const kindOf = flowKindsOf(all);
  const messages = all.filter((m) => isShown(m, kindOf(m), opts));
  const steps = groupBySteps(messages);
  // The areas' moves of the flows shown (an issuing's FORMAT and ACTIVATE stay out of a migrations-only trace).
  const shown = new Set(messages.map((m) => m.mig));
  const areas = areaChangesOf(segments, t0, opts.mig).filter((c) => c.mig === undefined || shown.has(c.mig));
  attachAreaChanges(steps, areas);
  const participants = orderParticipants(messages);
  const seen: string[] = [];
  for (const g of steps) if (!seen.includes(g.step)) seen.push(g.step);
  return {
    participants,
    steps,
    areas,
    totals: {
      messages: messages.length,
      bytes: messages.reduce((n, m) => n + m.bytes, 0),
      frameBytes: messages.reduce((n, m) => n + (m.frameBytes ?? 0), 0),
      groups: steps.length,
      steps: seen,
      ...flowIdsOf(messages, kindOf),
      repeats: {
        retransmissions: messages.filter((m) => m.repeat === 'retransmission').length,
        duplicates: messages.filter((m) => m.repeat === 'duplicate').length,
      },
      participants: participants.length,
      records,
    },
  };
}

/**
 * Step 2: one arrow per envelope: every `out` (the second and later of one
 * id marked 'retransmission'), and an `in` when its sender recorded nothing,
 * or when its receiver got that id more often than it had been sent by then
 * ('duplicate': a link that delivered a copy).
 */
function arrowsOf(merged: readonly Timed[]): Arrow[] {
  const outs = new Map<string, number>();
  for (const { r } of merged) if (r.direction === 'out') outs.set(keyOf(r.from, r.id), (outs.get(keyOf(r.from, r.id)) ?? 0) + 1);
  const sent = new Map<string, number>();
  const received = new Map<string, number>();
  const arrows: Arrow[] = [];
  for (const x of merged) {
    const k = keyOf(x.r.from, x.r.id);
    const seen = x.r.direction === 'out' ? sent : received;
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    if (x.r.direction === 'out') arrows.push(n > 1 ? { ...x, repeat: 'retransmission' } : x);
    // An in-only envelope is drawn once from its first in; an in beyond the sends so far is a duplicate.
    else if (n > Math.max(sent.get(k) ?? 0, 1)) arrows.push({ ...x, repeat: 'duplicate' });
    else if (!outs.has(k)) arrows.push(x);
  }
  return arrows;
}

/** Step 3: each arrow's migration, through corr in both directions (by sender and envelope id). */
function migrationsOf(arrows: readonly Timed[]): Map<string, string> {
  const migOf = new Map<string, string>();
  for (const { r } of arrows) if (r.mig) migOf.set(keyOf(r.from, r.id), r.mig);
  for (const { r } of arrows) {
    if (r.mig || !r.corr) continue;
    const asked = migOf.get(keyOf(r.to, r.corr));
    if (asked) migOf.set(keyOf(r.from, r.id), asked);
  }
  for (const { r } of arrows) {
    if (!r.corr) continue;
    const answered = migOf.get(keyOf(r.from, r.id));
    const request = keyOf(r.to, r.corr);
    if (answered && !migOf.has(request)) migOf.set(request, answered);
  }
  return migOf;
}

/** Step 4: each arrow's step, in the order the arrows come (a step carries forward). */
class StepTracker {
  /** Each migration's current step. */
  private readonly current = new Map<string, string>();
  /** Migrations whose progress notices decide their steps. */
  private readonly announced = new Set<string>();
  /** The last loose step (outside a migration) each party took part in. */
  private readonly activity = new Map<string, string>();
  /** The step each arrow was filed under (by sender and envelope id): a reply goes with its request. */
  private readonly stepAt = new Map<string, string>();

  /** The step of the arrow `r` (key `k`) of migration `mig`; `again`: the same envelope again, which starts nothing. */
  stepOf(r: EnvelopeRecord, k: string, mig: string | undefined, again: boolean): string {
    const step = mig ? this.migrationStep(r, mig, again) : this.looseStep(r);
    if (!again) this.stepAt.set(k, step);
    return step;
  }

  /** The step the request `r` answers was filed under, if `r` is a reply to an arrow seen. */
  private requestStep(r: EnvelopeRecord): string | undefined {
    return r.corr ? this.stepAt.get(keyOf(r.to, r.corr)) : undefined;
  }

  private migrationStep(r: EnvelopeRecord, mig: string, again: boolean): string {
    const { current } = this;
    let step: string | undefined;
    // The same notice again (a duplicate delivery) is old news: it stays in the step under way.
    const announced = again ? [] : (r.announces ?? (r.type === 'progress' && r.step ? [r.step] : []));
    const marker = announced[0] ?? (again ? undefined : STEP_OF_TYPE[r.type]);
    if (marker) {
      // The arrow belongs to the first step it announces; what follows it, to the last (one turn's lines travel together).
      step = marker;
      current.set(mig, announced[announced.length - 1] ?? marker);
      if (announced.length > 0) this.announced.add(mig);
    } else if (this.announced.has(mig)) step = current.get(mig);
    else {
      // Without notices a reply goes with its request: its header may name another phase's step (an admin SAM's reply to a registration's identify says S1).
      step = this.requestStep(r);
      if (step === undefined && r.step) {
        step = r.step;
        current.set(mig, r.step);
      }
      step ??= current.get(mig);
    }
    return step ?? OTHER_STEP;
  }

  private looseStep(r: EnvelopeRecord): string {
    const { activity } = this;
    let step = r.step ?? LOOSE_STEP_OF_TYPE.find(([re]) => re.test(r.type))?.[1] ?? this.requestStep(r);
    step ??= activity.get(r.from) ?? activity.get(r.to) ?? OTHER_STEP;
    if (step !== OTHER_STEP) {
      activity.set(r.from, step);
      activity.set(r.to, step);
    }
    return step;
  }
}

/** Every message: each arrow with its time from `t0`, migration and step (the options pick from these later). */
function messagesOf(arrows: readonly Arrow[], migOf: ReadonlyMap<string, string>, t0: number): SeqMessage[] {
  const steps = new StepTracker();
  const messages: SeqMessage[] = [];
  for (const { r, at, repeat } of arrows) {
    const k = keyOf(r.from, r.id);
    const mig = migOf.get(k);
    // The same envelope again (the user's request waits through a whole phase) is drawn where it happened; it starts nothing.
    const step = steps.stepOf(r, k, mig, repeat !== undefined);
    const m: SeqMessage = { t: Math.round((at - t0) * 1000) / 1000, from: r.from, to: r.to, type: r.type, bytes: r.bytes, step, id: r.id };
    if (r.frameBytes !== undefined) m.frameBytes = r.frameBytes;
    if (mig !== undefined) m.mig = mig;
    if (r.item !== undefined) m.item = r.item;
    if (repeat !== undefined) m.repeat = repeat;
    messages.push(m);
  }
  return messages;
}

/** Grouping: consecutive messages of one step are one group. */
function groupBySteps(messages: readonly SeqMessage[]): SeqStep[] {
  const steps: SeqStep[] = [];
  for (const m of messages) {
    const last = steps[steps.length - 1];
    if (last && last.step === m.step) last.messages.push(m);
    else steps.push({ step: m.step, title: stepTitle(m.step), messages: [m] });
  }
  return steps;
}
