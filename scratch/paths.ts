import { MODELS } from '../src/model/models.ts';
import { coverage, generatePaths, formatText } from '../src/model/paths.ts';
for (const name of Object.keys(MODELS)) {
  for (const strategy of ['transitions'] as const) {
    const t0 = performance.now();
    const m = MODELS[name]!;
    const paths = generatePaths(m, strategy);
    const cov = coverage(m, paths);
    console.log(name, strategy, paths.length, 'paths', `states ${cov.states.reached}/${cov.states.total}`, `transitions ${cov.transitions.reached}/${cov.transitions.total}`, Math.round(performance.now() - t0), 'ms');
    if (strategy === 'transitions' && cov.missingTransitions.length) console.log('  missing:', cov.missingTransitions.slice(0, 12));
  }
}
