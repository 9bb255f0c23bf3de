/**
 * The chip areas' lane of a trace (issue 20): each area's moves through the
 * key-swap statechart (area.machine.ts), as the chips recorded them (state
 * records of machine 'area', actor `area:<area>`), each with the state and
 * key slots before and after, and the command, migration and step that moved
 * it. A reader sees the source's areas go main → temp at S3, the
 * destination's be formatted (S10), loaded (S14) and activated (S16), and a
 * rollback restore the source and wipe the destination.
 *
 * Pure, like sequence.ts: records in, changes out.
 */
import { ACTIVE_SLOT, type AreaState } from '../machines/area.machine.ts';
import type { StateRecord } from './records.ts';
import type { RunSegment, SeqStep } from './sequence.ts';

/** An area's state and the key slots it holds then (never a key). */
export interface AreaSlots {
  state: string;
  /** Which keys it holds: none, temp, main or both. */
  keys: string;
  /** Which one the chip answers with: 'temp', 'main', or null (none). */
  active: 'main' | 'temp' | null;
}

/** One move of one chip area. */
export interface AreaChange {
  /** Milliseconds from the first message of the run, on the sequence's clock. */
  t: number;
  /** The chip's party id. */
  chip: string;
  area: string;
  /** The command that moved it (LOCK, FORMAT, DOWNLOAD, ACTIVATE, RESTORE, WIPE). */
  event?: string;
  mig?: string;
  /** The step its command named (S3, S10, S14, S16, rollback…). */
  step?: string;
  from: AreaSlots;
  to: AreaSlots;
}

/** Where an area is before its first record: absent, holding nothing (a chip reports every area it holds at power-on). */
const ABSENT: AreaSlots = { state: 'absent', keys: 'none', active: null };
const AREA_PREFIX = 'area:';

function slotsOf(r: StateRecord): AreaSlots {
  const state = r.states[0]?.split('.').slice(1).join('.') ?? '?';
  return { state, keys: r.keys ?? '?', active: ACTIVE_SLOT[state as AreaState] ?? null };
}

/**
 * Every area move of the run, in time order; `t0` is the wall-clock ms the
 * sequence counts from. A record that repeats the state the area is in (a
 * power-on report) is no move. With `mig`, only that migration's moves (each
 * still with the state it left, whoever put the area there).
 */
export function areaChangesOf(segments: readonly RunSegment[], t0: number, mig?: string): AreaChange[] {
  const timed: Array<{ at: number; r: StateRecord }> = [];
  for (const s of segments)
    for (const r of s.records) if (r.kind === 'state' && r.machine === 'area' && r.actor.startsWith(AREA_PREFIX)) timed.push({ at: s.baseMs + r.t, r });
  timed.sort((a, b) => a.at - b.at);
  const current = new Map<string, AreaSlots>();
  const changes: AreaChange[] = [];
  for (const { at, r } of timed) {
    const key = `${r.party}\u0000${r.actor}`;
    const from = current.get(key) ?? ABSENT;
    const to = slotsOf(r);
    current.set(key, to);
    if (from.state === to.state) continue;
    if (mig !== undefined && r.mig !== mig) continue;
    const c: AreaChange = {
      t: Math.round((at - (Number.isFinite(t0) ? t0 : at)) * 1000) / 1000,
      chip: r.party,
      area: r.actor.slice(AREA_PREFIX.length),
      from,
      to,
    };
    if (r.event !== undefined) c.event = r.event;
    if (r.mig !== undefined) c.mig = r.mig;
    if (r.step !== undefined) c.step = r.step;
    changes.push(c);
  }
  return changes;
}

/**
 * Files each change under the step group it happened in: the group of the
 * last message drawn before it (the first group when it came before any),
 * or the group right after that one when it is the step the command named.
 * A sequence with no messages files none (they stay in `Sequence.areas`).
 */
export function attachAreaChanges(steps: SeqStep[], changes: readonly AreaChange[]): void {
  let g = 0;
  for (const c of changes) {
    if (steps.length === 0) return;
    while (g + 1 < steps.length && (steps[g + 1]!.messages[0]?.t ?? Infinity) <= c.t) g++;
    // With some types hidden a step's group may start after its command ran: the next group, when it is the command's step.
    const at = steps[g]!.step !== c.step && steps[g + 1]?.step === c.step ? g + 1 : g;
    (steps[at]!.areas ??= []).push(c);
  }
}

/** How a change reads in a drawing: `emoney: mainActive [main] → locked [temp+main] (LOCK)`. */
export function areaChangeLabel(c: AreaChange): string {
  const slots = (s: AreaSlots) => `${s.state} [${s.keys === 'both' ? `main+temp, ${s.active} active` : s.keys}]`;
  return `${c.area}: ${slots(c.from)} → ${slots(c.to)}${c.event ? ` (${c.event})` : ''}`;
}
