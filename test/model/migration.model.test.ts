/**
 * Model-based suite (issue 5): every path xstate/graph generates through the
 * migration statechart (one per transition, payloads sampled so failures,
 * cancels, deadlines, lost terminals and rollbacks are all reached) is run
 * against the real embedded system — real crypto, real LMDB, real parties —
 * with the environment's choices steered into the real world. At each step
 * the real server's migration actor must reach the state the model reached,
 * and protocol.md §4.1/§4.2 are checked after every delivered message. A
 * transition counts as covered when the real actor took it on a path that
 * matched the model from start to end. Along the way, every step the real
 * system takes must be one the abstract safety model (src/model/safety/)
 * allows: its stores are projected onto that model after every delivered
 * message and checked for conformance.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyTransitionDefinition } from 'xstate';
import { MODELS } from '../../src/model/models.ts';
import { generatePaths, machineGraph } from '../../src/model/paths.ts';
import { runMigrationPath, type PathOutcome } from '../helpers/modelRun.ts';

/** Paths run side by side (each its own system; much of a path is waiting on timeouts and retries). */
const CONCURRENCY = 3;

test('every migration path runs on the real system as the model says; transition coverage 100%', async () => {
  const model = MODELS.migration!;
  const paths = generatePaths(model, 'transitions');
  const covered = new Set<AnyTransitionDefinition>();
  const outcomes: PathOutcome[] = new Array(paths.length);
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < paths.length; i = next++) outcomes[i] = await runMigrationPath(paths[i]!, covered, `model-path-${i}`);
    }),
  );
  const failed = outcomes.map((o, i) => [i, o] as const).filter(([, o]) => !o.ok);
  const graph = machineGraph(model.machine);
  const total = graph.transitions.size;
  const reached = [...graph.transitions.keys()].filter((t) => covered.has(t)).length;
  const missing = [...graph.transitions.entries()].filter(([t]) => !covered.has(t)).map(([, v]) => v.label);
  console.log(
    `  migration: ${paths.length} model paths executed on the real system, ${paths.length - failed.length} matched the model; ` +
      `transitions covered ${reached}/${total} (${((reached / total) * 100).toFixed(0)}%), ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  // Conformance (src/model/safety/): every step the real system took was a step the abstract safety model allows.
  const conformed = outcomes.filter((o) => o.conformance !== null);
  const sum = (f: (c: NonNullable<PathOutcome['conformance']>) => number) => conformed.reduce((acc, o) => acc + f(o.conformance!), 0);
  console.log(
    `  conformance to the abstract safety model: ${conformed.length}/${paths.length} paths checked (the others are not its world: issuance, partial or empty source, full destination), ` +
      `${sum((c) => c.observations)} projections, ${sum((c) => c.changes)} changes, at most ${Math.max(0, ...conformed.map((o) => o.conformance!.stepsMax))} abstract steps per change`,
  );
  assert.equal(
    failed.map(([i, o]) => `path #${i} (${paths[i]!.events.map((e) => e.type).join(' > ')}): ${o.problem}`),
    [],
  );
  assert.equal(missing, [], 'every transition of the migration statechart taken by the real actor');
  assert.is(reached, total);
});

test.run();
