// A tester's own suite, with uvu: node --import tsx node_modules/uvu/bin.js examples/uvu
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { paths, runMigrationPath } from 'valmove/testing';

// One path through every transition of the server's migration statechart.
const plan = paths('migration', 'transitions');

test('the plan covers every transition of the migration chart', () => {
  assert.is(plan.coverage.transitions.reached, plan.coverage.transitions.total);
});

// A completed migration and a rollback, each on a fresh real system: real actors, real LMDB in a temp folder.
for (const end of ['completed', 'rolledBack']) {
  const path = plan.paths.find((p) => p.state === end && p.variant === undefined);
  test(`a path that ends ${end} runs on the real system as the chart says`, async () => {
    assert.ok(path, `no path ends ${end}`);
    const outcome = await runMigrationPath(path, { seed: 'my-suite' });
    assert.ok(outcome.ok, outcome.problem);
    assert.is(outcome.matched, path.events.length);
  });
}

test.run();
