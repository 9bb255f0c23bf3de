/** Hand-made run records for the trace tests: a run header, and an envelope as one party (or both ends) recorded it. */
import type { EnvelopeRecord, RunStartRecord } from '../../src/trace/index.ts';

const START = Date.parse('2026-01-01T00:00:00.000Z');

/** A run file's header for `party`, its clock `offsetMs` from the others'. */
export const header = (party: string, offsetMs = 0): RunStartRecord => ({
  kind: 'run',
  v: 1,
  source: 'party',
  party,
  startedAt: new Date(START + offsetMs).toISOString(),
});

/** The header fields of an envelope (100 bytes unless told). */
export type Envelope = Pick<EnvelopeRecord, 'id' | 'from' | 'to' | 'type'> & Partial<Pick<EnvelopeRecord, 'corr' | 'mig' | 'step' | 'announces' | 'bytes'>>;

/** An envelope record as `party` saw it. */
export function seen(party: string, direction: 'in' | 'out', t: number, e: Envelope): EnvelopeRecord {
  return { kind: 'envelope', t, direction, party, bytes: 100, ...e };
}

/** One envelope as both ends record it. */
export function both(tOut: number, tIn: number, e: Envelope): [EnvelopeRecord, EnvelopeRecord] {
  return [seen(e.from, 'out', tOut, e), seen(e.to, 'in', tIn, e)];
}
