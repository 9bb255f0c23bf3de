/**
 * The runner of valmove/testing checks what it says it checks: a JSON path
 * whose step claims a state the real migration actor does not reach fails,
 * naming the step, the state it expected and the states the real actor went
 * through; the same path as printed passes. (Seeded once: a runner that
 * matched an event without comparing the state let the doctored path pass.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type PathJson, pathsJson, runMigrationPath } from '../../src/testing/index.ts';

/** The shortest path that cancels at once: the migration is refused before it locks anything. */
function cancelAtOnce(): PathJson {
  const plan = pathsJson('migration', 'transitions').machines[0]!;
  const path = plan.paths.find((p) => p.variant === null && p.state === 'refused' && p.steps[0]!.event.type === 'CANCEL_REQUESTED');
  assert.ok(path, 'a path that cancels at once');
  return path;
}

test('a JSON path runs on the real system, each step in the state it names', async () => {
  const path = cancelAtOnce();
  const outcome = await runMigrationPath(path, { seed: 'runner-check' });
  assert.ok(outcome.ok, outcome.problem);
  assert.is(outcome.matched, path.steps.length);
  assert.is(outcome.realStates.at(-1), path.state);
});

test('a JSON path that claims a state the real actor does not reach fails, naming the step and what the actor did', async () => {
  const path = structuredClone(cancelAtOnce());
  const last = path.steps.at(-1)!;
  last.to = 'completed';
  path.state = 'completed';
  const outcome = await runMigrationPath(path, { seed: 'runner-check' });
  assert.not.ok(outcome.ok, 'the doctored path passed: the runner did not check the state');
  assert.is(outcome.matched, path.steps.length - 1);
  assert.match(outcome.problem ?? '', new RegExp(`waiting for ${last.event.type} to lead from ${last.from} to completed`));
  assert.match(outcome.problem ?? '', /ended in refused/);
});

test.run();
