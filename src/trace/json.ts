/**
 * A recorded sequence as plain JSON: `{ participants, steps: [{ step, title,
 * messages, areas? }], areas, totals }`: every message, none folded; `areas`
 * lists every chip area's move (state and key slots before and after, command,
 * migration, step: areas.ts), and each step group the moves made during it.
 */
import type { AreaChange } from './areas.ts';
import type { Repeat, Sequence } from './sequence.ts';

export interface SequenceJson {
  participants: string[];
  steps: Array<{
    step: string;
    title: string;
    messages: Array<{ t: number; from: string; to: string; type: string; bytes: number; frameBytes?: number; mig?: string; item?: number; repeat?: Repeat }>;
    areas?: AreaChange[];
  }>;
  areas: AreaChange[];
  totals: Sequence['totals'];
}

export function toJson(seq: Sequence): SequenceJson {
  return {
    participants: seq.participants,
    steps: seq.steps.map((g) => ({
      step: g.step,
      title: g.title,
      messages: g.messages.map((m) => ({
        t: m.t,
        from: m.from,
        to: m.to,
        type: m.type,
        bytes: m.bytes,
        frameBytes: m.frameBytes,
        mig: m.mig,
        item: m.item,
        repeat: m.repeat,
      })),
      ...(g.areas ? { areas: g.areas } : {}),
    })),
    areas: seq.areas,
    totals: seq.totals,
  };
}
