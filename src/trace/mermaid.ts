/**
 * A recorded sequence as a Mermaid sequence diagram: a title naming what it
 * shows, one `participant` per party in protocol order, each step group a
 * `rect` with a note naming the step, each envelope an arrow labelled with
 * its type and size (dashed, and labelled so, when it is the same envelope
 * again), each chip session's relayed frames one note with their count.
 */
import { areaChangeLabel } from './areas.ts';
import { storyTitle } from './flows.ts';
import { type FramesMode, messageLabel, framesLabel, rowsOf } from './rows.ts';
import { stepHeading, type Sequence } from './sequence.ts';

export { formatBytes } from './rows.ts';

/** Background of a step group, by phase (Fig. 3 source, Fig. 4 destination, then commit and clean-up). */
export function phaseColor(step: string): { r: number; g: number; b: number } {
  const n = /^S(\d+)$/.exec(step);
  if (n) {
    const i = Number(n[1]);
    if (i <= 8) return { r: 232, g: 241, b: 252 };
    if (i <= 15) return { r: 233, g: 247, b: 236 };
    return { r: 252, g: 246, b: 224 };
  }
  if (step === 'preflight') return { r: 232, g: 241, b: 252 };
  if (step === 'commit') return { r: 252, g: 246, b: 224 };
  if (step === 'rollback') return { r: 252, g: 232, b: 232 };
  return { r: 242, g: 242, b: 242 };
}

/** Mermaid reads `;` as a line break and `#` as the start of an entity; labels are names and numbers, so drop both. */
function label(text: string): string {
  return text.replace(/[;#\r\n]/g, ' ');
}

export function toMermaid(seq: Sequence, opts: { frames?: FramesMode } = {}): string {
  const alias = new Map(seq.participants.map((p, i) => [p, `P${i}`]));
  const at = new Map(seq.participants.map((p, i) => [p, i]));
  const lines = ['sequenceDiagram', `  title ${label(storyTitle(seq.totals))}`];
  for (const p of seq.participants) lines.push(`  participant ${alias.get(p)} as ${label(p)}`);
  const first = alias.get(seq.participants[0] ?? '');
  const last = alias.get(seq.participants[seq.participants.length - 1] ?? '');
  const span = first === last ? first : `${first},${last}`;
  for (const g of seq.steps) {
    const c = phaseColor(g.step);
    lines.push(`  rect rgb(${c.r}, ${c.g}, ${c.b})`);
    lines.push(`    Note over ${span}: ${label(stepHeading(g.step))}`);
    for (const row of rowsOf(g, opts.frames)) {
      if (row.kind === 'message') {
        const m = row.message;
        lines.push(`    ${alias.get(m.from)}${m.repeat ? '-->>' : '->>'}${alias.get(m.to)}: ${label(messageLabel(m, false))}`);
        continue;
      }
      const ends = row.parties.map((p) => at.get(p)!).sort((a, b) => a - b);
      lines.push(`    Note over P${ends[0]},P${ends[ends.length - 1]}: ${label(framesLabel(row))}`);
    }
    // The chip areas that moved in this group: a note on the chip's lifeline (the key swap, seen).
    for (const c of g.areas ?? []) {
      const over = alias.get(c.chip);
      lines.push(`    Note over ${over ?? span}: ${label(over ? areaChangeLabel(c) : `${c.chip} ${areaChangeLabel(c)}`)}`);
    }
    lines.push('  end');
  }
  return `${lines.join('\n')}\n`;
}
