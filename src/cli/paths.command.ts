/** `valmove paths`: model-based test paths from the statecharts, and their coverage. */
import { type Command, InvalidArgumentError } from 'commander';
import { MODEL_NAMES, MODELS } from '../model/models.ts';
import { coverage, describeEvent, formatMermaid, formatText, generatePaths, type Strategy } from '../model/paths.ts';

export function addPathsCommand(program: Command, out: (line: string) => void): void {
  program
    .command('paths')
    .description('test paths through the statecharts (xstate/graph), each as its events and target state, with coverage')
    .option('--machine <name>', `${MODEL_NAMES.join(' | ')} | all`, 'all')
    .option(
      '--strategy <s>',
      'shortest (a shortest path to every state) | simple (every path without a repeated state) | transitions (one path through every transition)',
      'transitions',
    )
    .option('--format <f>', 'text | json | mermaid', 'text')
    .action((o: { machine: string; strategy: string; format: string }) => {
      const names = o.machine === 'all' ? MODEL_NAMES : [o.machine];
      for (const n of names) if (!MODELS[n]) throw new InvalidArgumentError(`unknown machine "${n}"; one of ${MODEL_NAMES.join(', ')}, all`);
      if (!['shortest', 'simple', 'transitions'].includes(o.strategy)) throw new InvalidArgumentError(`unknown strategy "${o.strategy}"`);
      if (!['text', 'json', 'mermaid'].includes(o.format)) throw new InvalidArgumentError(`unknown format "${o.format}"`);
      const results = names.map((n) => {
        const model = MODELS[n]!;
        const paths = generatePaths(model, o.strategy as Strategy);
        return { model, paths, cov: coverage(model, paths) };
      });
      if (o.format === 'json') {
        out(
          JSON.stringify(
            results.map(({ model, paths, cov }) => ({
              machine: model.name,
              strategy: o.strategy,
              coverage: cov,
              paths: paths.map((p) => ({ variant: p.variant, events: p.events, steps: p.events.map(describeEvent), state: p.state })),
            })),
            null,
            2,
          ),
        );
        return;
      }
      for (const { model, paths, cov } of results) {
        out(
          o.format === 'mermaid'
            ? `%% ${model.name}: ${paths.length} paths, transitions ${cov.transitions.reached}/${cov.transitions.total}\n${formatMermaid(model, paths)}`
            : formatText(model, paths, cov),
        );
      }
    });
}
