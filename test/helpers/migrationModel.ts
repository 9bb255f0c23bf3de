/**
 * The model-based run of the migration statechart (issue 5): the paths
 * xstate/graph generates through it (one per transition, payloads sampled so
 * failures, cancels, deadlines, lost terminals and rollbacks are all reached),
 * each run against the real embedded system (modelRun.ts), a few side by
 * side. `npm test` runs every fifth path (test/model/migration.model.test.ts),
 * `npm run test:deep` every one, with 100 % of the transitions taken by the
 * real actor (test/deep/model.deep.ts).
 */
import * as assert from 'uvu/assert';
import type { AnyTransitionDefinition } from 'xstate';
import { MODELS } from '../../src/model/models.ts';
import { generatePaths, machineGraph } from '../../src/model/paths.ts';
import { runMigrationPath, type PathOutcome } from './modelRun.ts';

/** Paths run side by side (each its own system; much of a path is waiting on timeouts and retries). */
const CONCURRENCY = 3;

/**
 * Runs every `stride`-th path (path i keeps its seed, `model-path-<i>`, whichever stride runs it) and checks
 * that each did what the model says and conformed to the abstract safety model; with `fullCoverage`, that the
 * real actor took every transition of the chart.
 */
export async function runMigrationModel(stride: number, fullCoverage: boolean): Promise<void> {
  const model = MODELS.migration!;
  const all = generatePaths(model, 'transitions');
  const chosen = all.map((path, i) => ({ path, i })).filter(({ i }) => i % stride === 0);
  const covered = new Set<AnyTransitionDefinition>();
  const outcomes: PathOutcome[] = new Array(chosen.length);
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let k = next++; k < chosen.length; k = next++) outcomes[k] = await runMigrationPath(chosen[k]!.path, covered, `model-path-${chosen[k]!.i}`);
    }),
  );
  const failed = outcomes.map((o, k) => [chosen[k]!, o] as const).filter(([, o]) => !o.ok);
  const graph = machineGraph(model.machine);
  const total = graph.transitions.size;
  const reached = [...graph.transitions.keys()].filter((t) => covered.has(t)).length;
  const missing = [...graph.transitions.entries()].filter(([t]) => !covered.has(t)).map(([, v]) => v.label);
  console.log(
    `  migration: ${chosen.length} of ${all.length} model paths executed on the real system, ${chosen.length - failed.length} matched the model; ` +
      `transitions covered ${reached}/${total} (${((reached / total) * 100).toFixed(0)}%), ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  // Conformance (src/model/safety/): every step the real system took was a step the abstract safety model allows.
  const conformed = outcomes.filter((o) => o.conformance !== null);
  const sum = (f: (c: NonNullable<PathOutcome['conformance']>) => number) => conformed.reduce((acc, o) => acc + f(o.conformance!), 0);
  console.log(
    `  conformance to the abstract safety model: ${conformed.length}/${chosen.length} paths checked (the others are not its world: issuance, partial or empty source, full destination), ` +
      `${sum((c) => c.observations)} projections, ${sum((c) => c.changes)} changes, at most ${Math.max(0, ...conformed.map((o) => o.conformance!.stepsMax))} abstract steps per change`,
  );
  assert.equal(
    failed.map(([{ path, i }, o]) => `path #${i} (${path.events.map((e) => e.type).join(' > ')}): ${o.problem}`),
    [],
  );
  if (!fullCoverage) return;
  assert.equal(missing, [], 'every transition of the migration statechart taken by the real actor');
  assert.is(reached, total);
}
