/** A recorded sequence as plain JSON: `{ participants, steps: [{ step, title, messages }], totals }`; every message, none folded. */
import type { Repeat, Sequence } from './sequence.ts';

export interface SequenceJson {
  participants: string[];
  steps: Array<{
    step: string;
    title: string;
    messages: Array<{ t: number; from: string; to: string; type: string; bytes: number; frameBytes?: number; mig?: string; item?: number; repeat?: Repeat }>;
  }>;
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
    })),
    totals: seq.totals,
  };
}
