/** `valmove charts`: the statecharts, exported from the machines the runtime runs (src/charts). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CHART_EXTENSIONS, CHART_FORMATS, CHART_VIEWS, ChartError, exportChart, isChartFormat, type ChartFormat } from '../charts/index.ts';
import { MODEL_NAMES, MODELS } from '../model/models.ts';

/** The line between two machines' charts on stdout, as a comment of that format. */
const SEPARATOR: Record<Exclude<ChartFormat, 'svg' | 'json'>, (machine: string) => string> = {
  mermaid: (m) => `%% ==== machine: ${m} ====`,
  scxml: (m) => `<!-- ==== machine: ${m} ==== -->`,
  dot: (m) => `// ==== machine: ${m} ====`,
};

export function addChartsCommand(program: Command, out: (line: string) => void): void {
  const command = program
    .command('charts')
    .description('export the statecharts (the very machines the runtime runs) as JSON for Stately, Mermaid, SCXML, Graphviz DOT or SVG')
    .option('--machine <name>', `${MODEL_NAMES.join(' | ')} | all`, 'all')
    .option('--format <f>', `${CHART_FORMATS.join(' | ')} (json: the machine config Stately's editor and createMachine read)`, 'mermaid')
    .option(
      '--view <v>',
      `${CHART_VIEWS.join(' | ')}: overview folds retries and cancels into notes; source and destination are the migration's phases (Fig. 3, Fig. 4)`,
      'full',
    )
    .option('--out <dir>', 'write <dir>/<machine>.<json|mmd|scxml|dot|svg> (<machine>.<view>.<ext> for a view), one file per machine, instead of printing')
    .action(async (o: { machine: string; format: string; view: string; out?: string }) => {
      const refuse = (message: string): never => command.error(`error: ${message}`, { exitCode: 2, code: 'valmove.charts.badInput' });
      const chart = async (machine: string, format: ChartFormat): Promise<string> => {
        try {
          return await exportChart(machine, format, o.view);
        } catch (e) {
          return e instanceof ChartError ? refuse(e.message) : Promise.reject(e);
        }
      };
      const names = o.machine === 'all' ? MODEL_NAMES : [o.machine];
      for (const n of names) if (!Object.hasOwn(MODELS, n)) refuse(`unknown machine "${n}"; one of ${MODEL_NAMES.join(', ')}, all`);
      if (!isChartFormat(o.format)) return refuse(`unknown format "${o.format}"; one of ${CHART_FORMATS.join(', ')}`);
      const format = o.format;
      if (o.out === undefined && format === 'svg' && names.length > 1) {
        refuse('svg of every machine needs --out <dir> (one file per machine); or name one machine with --machine');
      }

      if (o.out !== undefined) {
        mkdirSync(o.out, { recursive: true });
        for (const n of names) {
          const file = join(o.out, `${n}${o.view === 'full' ? '' : `.${o.view}`}.${CHART_EXTENSIONS[format]}`);
          writeFileSync(file, await chart(n, format));
          out(`wrote ${file}`);
        }
        return;
      }
      if (format === 'json' && names.length > 1) {
        // Several configs on stdout stay one JSON document: an object keyed by machine name.
        const all: Record<string, unknown> = {};
        for (const n of names) all[n] = JSON.parse(await chart(n, format));
        out(JSON.stringify(all, null, 2));
        return;
      }
      for (const n of names) {
        if (names.length > 1 && format !== 'json' && format !== 'svg') out(SEPARATOR[format](n));
        out((await chart(n, format)).trimEnd());
      }
    });
}
