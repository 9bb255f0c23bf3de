/**
 * The rows a drawing draws for one step group: an arrow per message, or, for
 * the frames a chip session sends through its relays (chip, terminal,
 * server, SAM and back, six or more per session), one bar with a count.
 * A 3-item run relays hundreds of frames; drawn one by one they bury the
 * protocol's own messages. The mermaid and SVG drawings share these rows
 * and labels, so both fold and mark the same way.
 */
import { plural } from './flows.ts';
import type { SeqMessage, SeqStep } from './sequence.ts';

/** Frames in a row drawn as one bar; fewer are drawn one by one (a bar for one frame hides its direction for nothing). */
export const FRAMES_FOLDED_MIN = 2;

/** How a drawing shows relayed frames: folded into one bar per session (the default), or every frame. */
export type FramesMode = 'fold' | 'all';
export const FRAMES_MODES: readonly FramesMode[] = ['fold', 'all'];

/** Consecutive frames of one chip session, drawn as one bar across the parties they passed. */
export interface FramesRow {
  kind: 'frames';
  messages: SeqMessage[];
  /** The parties the frames went between. */
  parties: string[];
}

export type Row = { kind: 'message'; message: SeqMessage } | FramesRow;

const CHIP_PREFIX = 'chip/';

/** The chip a frame went to or came from, if it touched one (the hops between relays name none). */
function chipOf(m: SeqMessage): string | undefined {
  if (m.from.startsWith(CHIP_PREFIX)) return m.from;
  if (m.to.startsWith(CHIP_PREFIX)) return m.to;
  return undefined;
}

/** The rows of a step group: with 'fold', each run of frames of one migration and one chip becomes one bar. */
export function rowsOf(g: SeqStep, frames: FramesMode = 'fold'): Row[] {
  const rows: Row[] = [];
  let run: { messages: SeqMessage[]; chip?: string } | undefined;
  const close = () => {
    if (!run) return;
    if (run.messages.length >= FRAMES_FOLDED_MIN) rows.push({ kind: 'frames', messages: run.messages, parties: partiesOf(run.messages) });
    else for (const message of run.messages) rows.push({ kind: 'message', message });
    run = undefined;
  };
  for (const m of g.messages) {
    if (frames === 'all' || m.type !== 'frame') {
      close();
      rows.push({ kind: 'message', message: m });
      continue;
    }
    const chip = chipOf(m);
    // Another migration's frame, or another chip's, starts another session.
    if (run && (run.messages[0]!.mig !== m.mig || (chip && run.chip && chip !== run.chip))) close();
    run ??= { messages: [] };
    run.messages.push(m);
    run.chip ??= chip;
  }
  close();
  return rows;
}

function partiesOf(messages: readonly SeqMessage[]): string[] {
  const parties: string[] = [];
  for (const m of messages) for (const p of [m.from, m.to]) if (!parties.includes(p)) parties.push(p);
  return parties;
}

export function formatBytes(n: number): string {
  return `${n} B`;
}

/** An arrow's label: `admin.lock (197 B)`, with `#item` when asked, and what it repeats (`…, retransmission`). */
export function messageLabel(m: SeqMessage, withItem = true): string {
  return `${m.type} (${formatBytes(m.bytes)}${m.repeat ? `, ${m.repeat}` : ''})${withItem && m.item !== undefined ? ` #${m.item}` : ''}`;
}

/** A folded bar's label: `6 relayed frames (1434 B, 512 B of session), 1 duplicate`. */
export function framesLabel(row: FramesRow): string {
  const bytes = row.messages.reduce((n, m) => n + m.bytes, 0);
  const frameBytes = row.messages.reduce((n, m) => n + (m.frameBytes ?? 0), 0);
  const marks: string[] = [];
  for (const repeat of ['retransmission', 'duplicate'] as const) {
    const n = row.messages.filter((m) => m.repeat === repeat).length;
    if (n > 0) marks.push(plural(n, repeat));
  }
  const counted = `${plural(row.messages.length, 'relayed frame')} (${formatBytes(bytes)}, ${formatBytes(frameBytes)} of session)`;
  return [counted, ...marks].join(', ');
}
