/**
 * `valmove trace RUN`: a recorded run (`demo --record`, `up --record`,
 * `start --record`) drawn as a message sequence grouped by protocol step,
 * like the seed's Fig. 3 and Fig. 4. RUN is a run file or a folder of
 * per-party run files (merged; an envelope recorded by both ends is one arrow).
 *
 * Bad input exits with code 2 and names the file and line. A cut-short last
 * line (a process killed mid-write) is skipped with a warning on stderr.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadRun, TraceInputError, type LoadedRun } from '../trace/load.ts';
import { toJson } from '../trace/json.ts';
import { toMermaid } from '../trace/mermaid.ts';
import { sequenceOf } from '../trace/sequence.ts';
import { toSvg } from '../trace/svg.ts';

export const TRACE_FORMATS = ['mermaid', 'svg', 'json'] as const;

export function addTraceCommand(program: Command, out: (line: string) => void): void {
  program
    .command('trace')
    .description('draw a recorded run (--record of demo, up or start) as a sequence diagram grouped by protocol step S1-S17')
    .argument('<run>', 'a run file (.jsonl), or a folder of per-party run files')
    .option('--format <f>', TRACE_FORMATS.join(' | '), 'mermaid')
    .option('--mig <id>', 'only this migration (its id, e.g. m-…)')
    .option('--hide <types>', 'leave these envelope types out of the drawing (they still mark the steps), e.g. frame,progress', (v: string) =>
      v
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
    )
    .option('--out <file>', 'write the drawing to this file instead of standard output')
    .action((runPath: string, o: { format: string; mig?: string; hide?: string[]; out?: string }) => {
      const fail = (message: string): never => program.error(`error: ${message}`, { exitCode: 2 });
      if (!(TRACE_FORMATS as readonly string[]).includes(o.format)) fail(`--format must be one of ${TRACE_FORMATS.join(', ')}; got "${o.format}"`);
      let run: LoadedRun;
      try {
        run = loadRun(runPath);
      } catch (e) {
        if (e instanceof TraceInputError) return fail(e.message);
        throw e;
      }
      for (const w of run.warnings) process.stderr.write(`valmove trace: warning: ${w}\n`);
      const seq = sequenceOf(run.segments, { mig: o.mig, hide: o.hide });
      if (o.mig !== undefined && seq.totals.messages === 0) {
        const known = sequenceOf(run.segments).totals.migrations;
        fail(`no messages of migration ${o.mig} in ${runPath}; it holds ${known.length ? known.join(', ') : 'no migration'}`);
      }
      const text = o.format === 'json' ? `${JSON.stringify(toJson(seq), null, 2)}\n` : o.format === 'svg' ? toSvg(seq) : toMermaid(seq);
      if (o.out) {
        writeFileSync(o.out, text);
        out(
          `${o.out}: ${seq.totals.messages} messages in ${seq.totals.groups} step groups (${seq.totals.steps.join(' ')}), ` +
            `${seq.participants.length} participants`,
        );
      } else {
        out(text.replace(/\n$/, ''));
      }
    });
}
