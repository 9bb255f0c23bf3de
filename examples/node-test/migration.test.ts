// A tester's own suite, with node:test: node --import tsx --test examples/node-test/migration.test.ts
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathsDocumentSchema, pathsJson, runMigrationPath } from 'valmove/testing';

// What `valmove paths --machine migration --strategy shortest --format json` prints, read through its schema.
const doc = pathsDocumentSchema.parse(pathsJson('migration', 'shortest'));
const migration = doc.machines[0]!;

test('shortest: a path to every reachable state of the migration chart', () => {
  assert.equal(migration.coverage.states.reached, migration.coverage.states.total);
});

test('the shortest path to "completed" runs on the real system, its states checked step by step', async () => {
  const path = migration.paths.find((p) => p.state === 'completed');
  assert.ok(path, 'no path ends completed');
  const outcome = await runMigrationPath(path, { seed: 'my-suite' });
  assert.ok(outcome.ok, outcome.problem);
  assert.equal(outcome.matched, path.steps.length);
});
