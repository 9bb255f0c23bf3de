/**
 * A recorded sequence drawn as a self-contained SVG sequence diagram:
 * participants across the top, lifelines down, one band per step group
 * (coloured by phase, titled "S7 upload item"), one labelled arrow per
 * envelope (dashed red, labelled so, when it is the same envelope again),
 * one grey bar with a count per chip session's relayed frames (rows.ts), and
 * a legend line with the totals. No scripts, no external references, generic
 * font families only; every text is escaped for XML.
 */
import { plural, storyTitle } from './flows.ts';
import { formatBytes, phaseColor } from './mermaid.ts';
import { areaChangeLabel, type AreaChange } from './areas.ts';
import { type FramesMode, type FramesRow, framesLabel, messageLabel, type Row, rowsOf } from './rows.ts';
import { type SeqMessage, stepHeading, type Sequence } from './sequence.ts';

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
/** How an envelope seen again is drawn: a dashed arrow in red. */
const REPEAT_STROKE = '#c0392b';
const REPEAT_DASH = '6 3';

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

export function toSvg(seq: Sequence, opts: { frames?: FramesMode } = {}): string {
  const n = Math.max(1, seq.participants.length);
  const width = MARGIN_PX * 2 + n * COLUMN_PX;
  const x = new Map(seq.participants.map((p, i) => [p, MARGIN_PX + i * COLUMN_PX + COLUMN_PX / 2]));
  const groups = seq.steps.map((g) => ({ g, rows: rowsOf(g, opts.frames) }));
  const rows = groups.reduce((h, { g, rows }) => h + BAND_TITLE_PX + (rows.length + (g.areas?.length ?? 0)) * ROW_PX, 0);
  const top = TITLE_PX + HEAD_PX + 10;
  const height = top + rows + 10 + LEGEND_PX;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
  );
  out.push(
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
      '<path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker>' +
      `<marker id="arrow-repeat" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">` +
      `<path d="M0,0 L10,5 L0,10 z" fill="${REPEAT_STROKE}"/></marker></defs>`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${MARGIN_PX}" y="22" font-size="15" font-weight="bold">${escapeXml(storyTitle(seq.totals))}</text>`);

  // Step bands first (behind the lifelines and arrows).
  let y = top;
  const bands: string[] = [];
  const arrows: string[] = [];
  for (const { g, rows } of groups) {
    const c = phaseColor(g.step);
    const h = BAND_TITLE_PX + (rows.length + (g.areas?.length ?? 0)) * ROW_PX;
    bands.push(`<g class="step" data-step="${escapeXml(g.step)}">`);
    bands.push(`<rect x="4" y="${y}" width="${width - 8}" height="${h}" fill="rgb(${c.r},${c.g},${c.b})" stroke="#ccc"/>`);
    bands.push(`<text x="10" y="${y + 16}" font-weight="bold">${escapeXml(stepHeading(g.step))}</text>`);
    bands.push('</g>');
    for (const [i, row] of rows.entries()) arrows.push(...drawRow(row, y + BAND_TITLE_PX + i * ROW_PX, x));
    arrows.push(...areaNotes(g.areas ?? [], x, y + BAND_TITLE_PX + rows.length * ROW_PX, width));
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
  out.push(`<text x="${MARGIN_PX}" y="${top + rows + 28}" font-size="12">${escapeXml(legendOf(seq))}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** One row of a step band, its top at `rowY`: an arrow, or a folded bar of frames. */
function drawRow(row: Row, rowY: number, x: ReadonlyMap<string, number>): string[] {
  return row.kind === 'message' ? drawArrow(row.message, rowY, x) : drawFrames(row, rowY, x);
}

function drawArrow(m: SeqMessage, rowY: number, x: ReadonlyMap<string, number>): string[] {
  const ay = rowY + ROW_PX - 5;
  const x1 = x.get(m.from)!;
  const x2 = x.get(m.to)!;
  const text = escapeXml(messageLabel(m));
  const style = m.repeat
    ? `class="${m.repeat}" stroke="${REPEAT_STROKE}" stroke-dasharray="${REPEAT_DASH}" marker-end="url(#arrow-repeat)"`
    : 'stroke="#333" marker-end="url(#arrow)"';
  const fill = m.repeat ? ` fill="${REPEAT_STROKE}"` : '';
  if (x1 === x2) {
    return [`<path d="M${x1},${ay - 8} h24 v8 h-24" fill="none" ${style}/>`, `<text x="${x1 + 28}" y="${ay - 2}"${fill}>${text}</text>`];
  }
  return [
    `<line x1="${x1}" y1="${ay}" x2="${x2}" y2="${ay}" ${style}/>`,
    `<text x="${(x1 + x2) / 2}" y="${ay - 3}" text-anchor="middle"${fill}>${text}</text>`,
  ];
}

/** Frames relayed through a chip session: one bar across the parties they passed, with their count. */
function drawFrames(row: FramesRow, rowY: number, x: ReadonlyMap<string, number>): string[] {
  const xs = row.parties.map((p) => x.get(p)!);
  const left = Math.min(...xs);
  const right = Math.max(...xs);
  const marked = row.messages.some((m) => m.repeat);
  return [
    `<g class="frames" data-count="${row.messages.length}">`,
    `<rect x="${left}" y="${rowY + 3}" width="${right - left}" height="${ROW_PX - 6}" rx="3" fill="#e4e4e4" stroke="${marked ? REPEAT_STROKE : '#888'}"` +
      `${marked ? ` stroke-dasharray="${REPEAT_DASH}"` : ''}/>`,
    `<text x="${(left + right) / 2}" y="${rowY + ROW_PX - 6}" text-anchor="middle">${escapeXml(framesLabel(row))}</text>`,
    '</g>',
  ];
}

function legendOf(seq: Sequence): string {
  const t = seq.totals;
  const flows = [...t.migrations, ...t.registrations, ...t.issuings];
  const { retransmissions, duplicates } = t.repeats;
  const repeats = retransmissions + duplicates > 0 ? `; ${plural(retransmissions, 'retransmission')}, ${plural(duplicates, 'duplicate')} (dashed red)` : '';
  return (
    `${t.messages} messages, ${formatBytes(t.bytes)} (of which ${formatBytes(t.frameBytes)} relayed session frames), ` +
    `${t.groups} step groups over ${t.steps.length} steps, ${t.participants} participants${repeats}${flows.length ? `; ${flows.join(', ')}` : ''}`
  );
}
