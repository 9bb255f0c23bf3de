/**
 * A recorded sequence drawn as a self-contained SVG sequence diagram:
 * participants across the top, lifelines down, one band per step group
 * (coloured by phase, titled "S7 upload item"), one labelled arrow per
 * envelope, and a legend line with the totals. No scripts, no external
 * references, generic font families only; every text is escaped for XML.
 */
import { formatBytes, phaseColor } from './mermaid.ts';
import { areaChangeLabel, type AreaChange } from './areas.ts';
import { stepHeading, type Sequence } from './sequence.ts';

const COLUMN_PX = 170;
const MARGIN_PX = 20;
const TITLE_PX = 34;
const HEAD_PX = 34;
const BAND_TITLE_PX = 24;
const ROW_PX = 20;
const LEGEND_PX = 40;
const NAME_CHARS_MAX = 24;
/** Width of a character of an area note, for the width of its box (11 px sans-serif, generously). */
const AREA_NOTE_CHAR_PX = 6.2;

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function short(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The chip areas that moved in a step group: one note a row, by the chip's lifeline (class "area" for tools). */
function areaNotes(changes: readonly AreaChange[], x: ReadonlyMap<string, number>, top: number, width: number): string[] {
  const out: string[] = [];
  for (const [i, c] of changes.entries()) {
    const y = top + i * ROW_PX;
    const label = x.has(c.chip) ? areaChangeLabel(c) : `${c.chip} ${areaChangeLabel(c)}`;
    const w = label.length * AREA_NOTE_CHAR_PX + 12;
    const cx = x.get(c.chip) ?? MARGIN_PX;
    // Right of the lifeline, or left of it when that would run off the drawing (the destination chip is the last column).
    const left = cx + w + 4 > width ? Math.max(4, cx - w + 4) : cx - 4;
    out.push(
      `<g class="area" data-chip="${escapeXml(c.chip)}" data-area="${escapeXml(c.area)}" data-state="${escapeXml(c.to.state)}">` +
        `<rect x="${left}" y="${y + 2}" width="${w}" height="${ROW_PX - 4}" rx="3" fill="#fff8dc" stroke="#b8860b"/>` +
        `<text x="${left + 6}" y="${y + ROW_PX - 6}">${escapeXml(label)}</text></g>`,
    );
  }
  return out;
}

export function toSvg(seq: Sequence): string {
  const n = Math.max(1, seq.participants.length);
  const width = MARGIN_PX * 2 + n * COLUMN_PX;
  const x = new Map(seq.participants.map((p, i) => [p, MARGIN_PX + i * COLUMN_PX + COLUMN_PX / 2]));
  const rows = seq.steps.reduce((h, g) => h + BAND_TITLE_PX + (g.messages.length + (g.areas?.length ?? 0)) * ROW_PX, 0);
  const top = TITLE_PX + HEAD_PX + 10;
  const height = top + rows + 10 + LEGEND_PX;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
  );
  out.push(
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
      '<path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>',
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  const migs = seq.totals.migrations;
  const title = `valmove trace${migs.length === 1 ? ` — migration ${migs[0]}` : migs.length > 1 ? ` — ${migs.length} migrations` : ''}`;
  out.push(`<text x="${MARGIN_PX}" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);

  // Step bands first (behind the lifelines and arrows).
  let y = top;
  const bands: string[] = [];
  const arrows: string[] = [];
  for (const g of seq.steps) {
    const c = phaseColor(g.step);
    const h = BAND_TITLE_PX + (g.messages.length + (g.areas?.length ?? 0)) * ROW_PX;
    bands.push(`<g class="step" data-step="${escapeXml(g.step)}">`);
    bands.push(`<rect x="4" y="${y}" width="${width - 8}" height="${h}" fill="rgb(${c.r},${c.g},${c.b})" stroke="#ccc"/>`);
    bands.push(`<text x="10" y="${y + 16}" font-weight="bold">${escapeXml(stepHeading(g.step))}</text>`);
    bands.push('</g>');
    let row = y + BAND_TITLE_PX;
    for (const m of g.messages) {
      const ay = row + ROW_PX - 5;
      const x1 = x.get(m.from)!;
      const x2 = x.get(m.to)!;
      const text = escapeXml(`${m.type} (${formatBytes(m.bytes)})${m.item !== undefined ? ` #${m.item}` : ''}`);
      if (x1 === x2) {
        arrows.push(`<path d="M${x1},${ay - 8} h24 v8 h-24" fill="none" stroke="#333" marker-end="url(#arrow)"/>`);
        arrows.push(`<text x="${x1 + 28}" y="${ay - 2}">${text}</text>`);
      } else {
        arrows.push(`<line x1="${x1}" y1="${ay}" x2="${x2}" y2="${ay}" stroke="#333" marker-end="url(#arrow)"/>`);
        arrows.push(`<text x="${(x1 + x2) / 2}" y="${ay - 3}" text-anchor="middle">${text}</text>`);
      }
      row += ROW_PX;
    }
    arrows.push(...areaNotes(g.areas ?? [], x, row, width));
    y += h;
  }
  out.push(...bands);
  for (const p of seq.participants) {
    const cx = x.get(p)!;
    out.push(`<line x1="${cx}" y1="${TITLE_PX + HEAD_PX}" x2="${cx}" y2="${top + rows}" stroke="#999" stroke-dasharray="4 3"/>`);
    out.push(`<rect x="${cx - COLUMN_PX / 2 + 6}" y="${TITLE_PX}" width="${COLUMN_PX - 12}" height="${HEAD_PX - 6}" rx="4" fill="#f4f4f4" stroke="#555"/>`);
    out.push(
      `<text x="${cx}" y="${TITLE_PX + 18}" text-anchor="middle" font-family="monospace">` +
        `<title>${escapeXml(p)}</title>${escapeXml(short(p, NAME_CHARS_MAX))}</text>`,
    );
  }
  out.push(...arrows);
  const t = seq.totals;
  const legend =
    `${t.messages} messages, ${formatBytes(t.bytes)} (of which ${formatBytes(t.frameBytes)} relayed session frames), ` +
    `${t.groups} step groups over ${t.steps.length} steps, ${t.participants} participants${migs.length ? `; ${migs.join(', ')}` : ''}`;
  out.push(`<text x="${MARGIN_PX}" y="${top + rows + 28}" font-size="12">${escapeXml(legend)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
