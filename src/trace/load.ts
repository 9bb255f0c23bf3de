/**
 * Reading run files back: a file, or a folder of per-party files, as
 * segments (a segment is one `run` header and the records after it, timed
 * by that header's clock; a restarted process appends a second segment to
 * its file).
 *
 * Every line is checked against the record format: a line that is not a
 * record is an error naming its file and line (code BAD_RECORD). One
 * exception, by design: the last line of a file, when it is cut short (not
 * JSON, no newline at its end), is what a process killed mid-write leaves;
 * it is skipped with a warning and the rest of the run is used.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { RunRecord } from './records.ts';
import { RUN_FILE_BYTES_MAX } from './recorder.ts';
import { segmentsOf, type RunSegment } from './sequence.ts';

/** Files read from one run folder. */
export const RUN_FILES_MAX = 1_000;
/** Characters of a bad line quoted in an error. */
const QUOTE_CHARS_MAX = 80;

export type TraceErrorCode = 'NO_RUN' | 'BAD_RECORD' | 'TOO_LARGE';

/** Bad input to `valmove trace`: says which file and line, and what was wrong. */
export class TraceInputError extends Error {
  override readonly name = 'TraceInputError';
  constructor(
    readonly code: TraceErrorCode,
    message: string,
    readonly file?: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

export interface LoadedRun {
  segments: RunSegment[];
  files: string[];
  warnings: string[];
}

const text = z.string().min(1).max(256);
const ms = z.number().finite().min(0);
const runSchema = z.strictObject({
  kind: z.literal('run'),
  v: z.literal(1),
  source: z.enum(['demo', 'up', 'party']),
  party: text,
  startedAt: z.iso.datetime(),
});
const envelopeSchema = z.strictObject({
  kind: z.literal('envelope'),
  t: ms,
  direction: z.enum(['in', 'out']),
  party: text,
  id: text,
  corr: text.optional(),
  from: text,
  to: text,
  type: text,
  mig: text.optional(),
  step: text.optional(),
  announces: z.array(text).max(16).optional(),
  item: z.number().int().min(0).optional(),
  bytes: z.number().int().min(0),
  frameBytes: z.number().int().min(0).optional(),
});
const stateSchema = z.strictObject({
  kind: z.literal('state'),
  t: ms,
  party: text,
  actor: text,
  machine: text,
  states: z.array(z.string().max(256)).max(64),
  event: text.optional(),
  keys: z.enum(['none', 'temp', 'main', 'both']).optional(),
  mig: text.optional(),
  step: text.optional(),
});
const recordSchema = z.discriminatedUnion('kind', [runSchema, envelopeSchema, stateSchema]);

/** Checks one parsed value against the record format; returns the record, or why not. */
export function checkRecord(value: unknown): { ok: true; record: RunRecord } | { ok: false; why: string } {
  const r = recordSchema.safeParse(value);
  if (r.success) return { ok: true, record: r.data as RunRecord };
  const i = r.error.issues[0]!;
  return { ok: false, why: `${i.path.length ? i.path.join('.') : '(record)'}: ${i.message}` };
}

/** Parses one run file's text. Throws TraceInputError for anything but a cut-short last line. */
export function parseRunText(textIn: string, file: string, warnings: string[] = []): RunSegment[] {
  const lines = textIn.split('\n');
  const endsCleanly = textIn.endsWith('\n');
  if (endsCleanly) lines.pop();
  const records: RunRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const at = i + 1;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      if (at === lines.length && !endsCleanly) {
        warnings.push(`${file}:${at}: last line is cut short (the process was stopped mid-write); skipped`);
        continue;
      }
      throw new TraceInputError('BAD_RECORD', `${file}:${at}: not a JSON record: ${JSON.stringify(line.slice(0, QUOTE_CHARS_MAX))}`, file, at);
    }
    const checked = checkRecord(value);
    if (!checked.ok) throw new TraceInputError('BAD_RECORD', `${file}:${at}: not a run record (${checked.why})`, file, at);
    if (records.length === 0 && checked.record.kind !== 'run') {
      throw new TraceInputError('BAD_RECORD', `${file}:${at}: a run file starts with a "run" record; this one starts with "${checked.record.kind}"`, file, at);
    }
    records.push(checked.record);
  }
  if (records.length === 0) throw new TraceInputError('NO_RUN', `${file}: holds no records`, file);
  return segmentsOf(records, file);
}

/** Reads a run file, or every `*.jsonl` file of a folder (per-party files of a deployment). */
export function loadRun(pathOrDir: string): LoadedRun {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(pathOrDir);
  } catch {
    throw new TraceInputError('NO_RUN', `${pathOrDir}: no such file or folder`, pathOrDir);
  }
  let files: string[];
  if (st.isDirectory()) {
    files = readdirSync(pathOrDir)
      .filter((n) => n.endsWith('.jsonl'))
      .sort()
      .map((n) => join(pathOrDir, n));
    if (files.length === 0) throw new TraceInputError('NO_RUN', `${pathOrDir}: a folder with no *.jsonl run files`, pathOrDir);
    if (files.length > RUN_FILES_MAX)
      throw new TraceInputError('TOO_LARGE', `${pathOrDir}: ${files.length} run files; the limit is ${RUN_FILES_MAX}`, pathOrDir);
  } else {
    files = [pathOrDir];
  }
  const warnings: string[] = [];
  const segments: RunSegment[] = [];
  for (const f of files) {
    const size = statSync(f).size;
    if (size > RUN_FILE_BYTES_MAX) throw new TraceInputError('TOO_LARGE', `${f}: ${size} bytes; the limit is ${RUN_FILE_BYTES_MAX}`, f);
    segments.push(...parseRunText(readFileSync(f, 'utf8'), f, warnings));
  }
  return { segments, files, warnings };
}
