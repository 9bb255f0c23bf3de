/**
 * The model-based run of the migration statechart (issue 5), through the
 * tester library (valmove/testing: src/testing/model.suite.ts): the paths
 * xstate/graph generates through it (one per transition, payloads sampled so
 * failures, cancels, deadlines, lost terminals and rollbacks are all
 * reached), each run against the real embedded system, a few side by side.
 * `npm test` runs every fifth path (migration.model.test.ts), `npm run
 * test:deep` every one, with 100 % of the transitions taken by the real
 * actor (test/deep/model.deep.ts).
 */
import * as assert from 'uvu/assert';
import { generatePaths, MODELS, runMigrationPaths } from '../../src/testing/index.ts';

/**
 * Runs every `stride`-th path (path i keeps its seed, `model-path-<i>`, whichever stride runs it) and checks
 * that each did what the model says and conformed to the abstract safety model; with `fullCoverage`, that the
 * real actor took every transition of the chart.
 */
export async function runMigrationModel(stride: number, fullCoverage: boolean): Promise<void> {
  const all = generatePaths(MODELS.migration!, 'transitions');
  const indexes = all.map((_p, i) => i).filter((i) => i % stride === 0);
  const started = Date.now();
  const report = await runMigrationPaths(
    indexes.map((i) => all[i]!),
    {},
    indexes,
  );
  const { outcomes, failures, transitions: t } = report;
  console.log(
    `  migration: ${indexes.length} of ${all.length} model paths executed on the real system, ${indexes.length - failures.length} matched the model; ` +
      `transitions covered ${t.reached}/${t.total} (${((t.reached / t.total) * 100).toFixed(0)}%), ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  // Conformance (src/model/safety/): every step the real system took was a step the abstract safety model allows.
  const conformed = outcomes.flatMap((o) => (o.conformance ? [o.conformance] : []));
  const sum = (f: (c: (typeof conformed)[number]) => number) => conformed.reduce((acc, c) => acc + f(c), 0);
  console.log(
    `  conformance to the abstract safety model: ${conformed.length}/${indexes.length} paths checked (the others are not its world: issuance, partial or empty source, a provider left behind, full destination), ` +
      `${sum((c) => c.observations)} projections, ${sum((c) => c.changes)} changes, at most ${Math.max(0, ...conformed.map((c) => c.stepsMax))} abstract steps per change`,
  );
  assert.equal(failures, []);
  if (!fullCoverage) return;
  assert.equal(t.missing, [], 'every transition of the migration statechart taken by the real actor');
  assert.is(t.reached, t.total);
}
