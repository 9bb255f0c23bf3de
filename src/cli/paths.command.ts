/** `valmove paths`: model-based test paths from the statecharts, and their coverage. */
import { type Command, InvalidArgumentError } from 'commander';
import { MODEL_NAMES, MODELS } from '../model/models.ts';
import { coverageText, formatMermaid, formatText } from '../model/paths.format.ts';
import { type MachineResult, machineResult, pathsDocument } from '../model/paths.json.ts';
import { SIMPLE_PATHS_MAX, STRATEGIES, STRATEGY_PROMISE, type Strategy } from '../model/paths.ts';

interface PathsOptions {
  machine: string;
  strategy: string;
  format: string;
  limit: number;
}

const positive = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--limit must be a whole number of paths, at least 1; got "${v}"`);
  return n;
};

function print(results: MachineResult[], o: PathsOptions, out: (line: string) => void): void {
  if (o.format === 'json') {
    out(JSON.stringify(pathsDocument(results), null, 2));
    return;
  }
  for (const r of results) {
    if ('error' in r) out(`${r.model.name}: ${r.error.message}`);
    else if (o.format === 'mermaid') out(`%% ${r.model.name}: ${r.paths.length} paths, ${coverageText(r.cov)}\n${formatMermaid(r.model, r.paths)}`);
    else out(formatText(r.model, r.paths, r.cov, r.strategy));
  }
}

export function addPathsCommand(program: Command, out: (line: string) => void): void {
  program
    .command('paths')
    .description('test paths through the statecharts (xstate/graph), each as its events and target state, with coverage (docs/testers.md)')
    .option('--machine <name>', `${MODEL_NAMES.join(' | ')} | all`, 'all')
    .option('--strategy <s>', STRATEGIES.map((s) => `${s} (${STRATEGY_PROMISE[s]})`).join(' | '), 'transitions')
    .option('--format <f>', 'text | json (schema valmove.paths/1, docs/testers.md) | mermaid', 'text')
    .option(
      '--limit <n>',
      'simple: the most paths to list per machine (a machine with more is named instead, and the command exits 1)',
      positive,
      SIMPLE_PATHS_MAX,
    )
    .action((o: PathsOptions) => {
      const names = o.machine === 'all' ? MODEL_NAMES : [o.machine];
      for (const n of names) if (!MODELS[n]) throw new InvalidArgumentError(`unknown machine "${n}"; one of ${MODEL_NAMES.join(', ')}, all`);
      if (!(STRATEGIES as readonly string[]).includes(o.strategy)) {
        throw new InvalidArgumentError(`unknown strategy "${o.strategy}"; one of ${STRATEGIES.join(', ')}`);
      }
      if (!['text', 'json', 'mermaid'].includes(o.format)) throw new InvalidArgumentError(`unknown format "${o.format}"; one of text, json, mermaid`);
      const results = names.map((n) => machineResult(MODELS[n]!, o.strategy as Strategy, { limit: o.limit }));
      print(results, o, out);
      if (results.some((r) => 'error' in r)) process.exitCode = 1;
    });
}
