/**
 * A recorded sequence as a Mermaid sequence diagram: one `participant` per
 * party in protocol order, each step group a `rect` with a note naming the
 * step, each envelope an arrow labelled with its type and size.
 */
import { areaChangeLabel } from './areas.ts';
import { stepHeading, type Sequence } from './sequence.ts';

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

export function formatBytes(n: number): string {
  return `${n} B`;
}

export function toMermaid(seq: Sequence): string {
  const alias = new Map(seq.participants.map((p, i) => [p, `P${i}`]));
  const lines = ['sequenceDiagram'];
  for (const p of seq.participants) lines.push(`  participant ${alias.get(p)} as ${label(p)}`);
  const first = alias.get(seq.participants[0] ?? '');
  const last = alias.get(seq.participants[seq.participants.length - 1] ?? '');
  const span = first === last ? first : `${first},${last}`;
  for (const g of seq.steps) {
    const c = phaseColor(g.step);
    lines.push(`  rect rgb(${c.r}, ${c.g}, ${c.b})`);
    lines.push(`    Note over ${span}: ${label(stepHeading(g.step))}`);
    for (const m of g.messages) {
      lines.push(`    ${alias.get(m.from)}->>${alias.get(m.to)}: ${label(m.type)} (${formatBytes(m.bytes)})`);
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
