/**
 * `valmove trace RUN`: a recorded run (`demo --record`, `up --record`,
 * `start --record`) drawn as a message sequence grouped by protocol step,
 * like the seed's Fig. 3 and Fig. 4. RUN is a run file or a folder of
 * per-party run files (merged; an envelope recorded by both ends is one arrow).
 *
 * It tells the migrations' story: registrations, issuings and normal use are
 * left out unless asked for (`--include`, `--all`), and each chip session's
 * relayed frames are one bar with a count (`--frames all` draws each).
 *
 * Bad input exits with code 2 and names the file and line. A cut-short last
 * line (a process killed mid-write) is skipped with a warning on stderr.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FLOW_KINDS, type FlowKind, parseFlowKinds } from '../trace/flows.ts';
import { loadRun, TraceInputError, type LoadedRun } from '../trace/load.ts';
import { toJson } from '../trace/json.ts';
import { toMermaid } from '../trace/mermaid.ts';
import { FRAMES_MODES, type FramesMode } from '../trace/rows.ts';
import { sequenceOf, type Sequence, type SequenceOptions } from '../trace/sequence.ts';
import { toSvg } from '../trace/svg.ts';

export const TRACE_FORMATS = ['mermaid', 'svg', 'json'] as const;

/** What a trace shows when not told otherwise: the migrations. */
const DEFAULT_KINDS: readonly FlowKind[] = ['migration'];

/** The options as commander gives them. */
export interface TraceFlags {
  format?: string;
  mig?: string;
  hide?: string[];
  include?: string;
  all?: boolean;
  frames?: string;
  out?: string;
}

/** The options checked and resolved to what sequenceOf and the drawings take. */
export interface TraceOptions {
  format: (typeof TRACE_FORMATS)[number];
  frames: FramesMode;
  sequence: SequenceOptions;
}

const list = (v: string) =>
  v
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);

export function addTraceCommand(program: Command, out: (line: string) => void): void {
  program
    .command('trace')
    .description('draw a recorded run (--record of demo, up or start) as a sequence diagram grouped by protocol step S1-S17')
    .argument('<run>', 'a run file (.jsonl), or a folder of per-party run files')
    .option('--format <f>', TRACE_FORMATS.join(' | '), 'mermaid')
    .option('--mig <id>', 'only this flow (its id: a migration m-…, or a registration reg-… or an issuing i-…)')
    .option('--include <kinds>', `also show these kinds of flow besides migrations: ${FLOW_KINDS.filter((k) => k !== 'migration').join(',')}`)
    .option('--all', 'show every kind of flow: migrations, registrations, issuings, normal use and the rest')
    .option('--frames <mode>', `relayed session frames: ${FRAMES_MODES.join(' | ')} (fold: one bar per chip session with a count)`, 'fold')
    .option('--hide <types>', 'leave these envelope types out of the drawing (they still mark the steps), e.g. frame,progress', list)
    .option('--out <file>', 'write the drawing to this file instead of standard output')
    .action((runPath: string, flags: TraceFlags) => {
      const fail = (message: string): never => program.error(`error: ${message}`, { exitCode: 2 });
      let o: TraceOptions;
      let run: LoadedRun;
      try {
        o = traceOptions(flags);
        run = loadRun(runPath);
      } catch (e) {
        if (e instanceof TraceInputError || e instanceof TraceOptionError) return fail(e.message);
        throw e;
      }
      for (const w of run.warnings) process.stderr.write(`valmove trace: warning: ${w}\n`);
      const { seq, text } = drawTrace(run, o);
      if (seq.totals.messages === 0) fail(nothingShown(runPath, run, flags.mig));
      if (flags.out) {
        writeFileSync(flags.out, text);
        out(`${flags.out}: ${summaryOf(seq)}`);
      } else {
        out(text.replace(/\n$/, ''));
      }
    });
}

/** A bad `valmove trace` option: the message names it and what it takes. */
export class TraceOptionError extends Error {
  override readonly name = 'TraceOptionError';
}

/** The flags checked, with the defaults of the command: migrations only, frames folded. Throws TraceOptionError. */
export function traceOptions(flags: TraceFlags): TraceOptions {
  const { format = 'mermaid', frames = 'fold' } = flags;
  if (!(TRACE_FORMATS as readonly string[]).includes(format))
    throw new TraceOptionError(`--format must be one of ${TRACE_FORMATS.join(', ')}; got "${format}"`);
  if (!(FRAMES_MODES as readonly string[]).includes(frames)) throw new TraceOptionError(`--frames must be one of ${FRAMES_MODES.join(', ')}; got "${frames}"`);
  let include: FlowKind[] = [...DEFAULT_KINDS];
  try {
    if (flags.include !== undefined) include = [...new Set([...DEFAULT_KINDS, ...parseFlowKinds(flags.include)])];
  } catch (e) {
    throw new TraceOptionError(`--include: ${(e as Error).message}`);
  }
  if (flags.all) include = [...FLOW_KINDS];
  return {
    format: format as TraceOptions['format'],
    frames: frames as FramesMode,
    sequence: { mig: flags.mig, hide: flags.hide, include },
  };
}

/** A loaded run's sequence under the options, and its drawing in the format asked for. */
export function drawTrace(run: LoadedRun, o: TraceOptions): { seq: Sequence; text: string } {
  const seq = sequenceOf(run.segments, o.sequence);
  const text = o.format === 'json' ? `${JSON.stringify(toJson(seq), null, 2)}\n` : o.format === 'svg' ? toSvg(seq, o) : toMermaid(seq, o);
  return { seq, text };
}

/** Why a trace would be empty, and what the run holds instead. */
function nothingShown(runPath: string, run: LoadedRun, mig: string | undefined): string {
  const t = sequenceOf(run.segments).totals;
  const held = [
    ...t.migrations.map((id) => `migration ${id}`),
    ...t.registrations.map((id) => `registration ${id}`),
    ...t.issuings.map((id) => `issuing ${id}`),
  ];
  const holds = `it holds ${held.length ? held.join(', ') : 'no migration, registration or issuing'}`;
  if (mig !== undefined) return `no messages of migration ${mig} in ${runPath}; ${holds}`;
  return `nothing to draw in ${runPath} with these options; ${holds} (--include registration,issuing,normal or --all shows more than migrations)`;
}

function summaryOf(seq: Sequence): string {
  const t = seq.totals;
  const { retransmissions, duplicates } = t.repeats;
  return (
    `${t.messages} messages in ${t.groups} step groups (${t.steps.join(' ')}), ${seq.participants.length} participants` +
    (retransmissions + duplicates > 0 ? `; ${retransmissions} retransmitted, ${duplicates} duplicated` : '')
  );
}
