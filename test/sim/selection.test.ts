/**
 * The simulator's selective seeds (src/sim/selection.ts), with every fault kind: seed 0 has a user who leaves
 * a provider cut off past the preflight behind and moves it with a second migration once it is back; seed 12
 * a user who moves only some providers. Both end with no violation of the invariants, the selection one
 * (a migration touches only the areas it moves) checked after every message. Without these seeds the
 * selection check would have nothing to look at: the tallies show they ran.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSimDir } from '../../src/sim/runner.ts';
import { FAULT_KINDS, runSeed } from '../../src/sim/simulator.ts';

const dir = mkdtempSync(join(defaultSimDir(), '..', 'valmove-sim-selection-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const seed = (s: string) => runSeed({ seed: s, migrations: 4, items: 2, faults: FAULT_KINDS, dataDir: dir, keepTrace: true });

test('seed 0: a provider cut off at the preflight is left behind, then a second migration from the same source moves it', async () => {
  const r = await seed('0');
  assert.ok(r.ok, r.violation?.message);
  assert.is(r.stats.outcomes.leftBehind, 1, 'one migration left a provider behind');
  assert.is(r.stats.outcomes.movedLater, 1, 'and a second migration moved it');
  assert.ok(r.trace.some((l) => /OUTAGE migration-sam\/p\d cut off/.test(l)));
  assert.ok(
    r.trace.some((l) => /migrate-out only p\d on/.test(l)),
    'the second migrate-out names the left-behind provider',
  );
});

test('seed 12: a user moves only some providers; the others stay on the source', async () => {
  const r = await seed('12');
  assert.ok(r.ok, r.violation?.message);
  assert.is(r.stats.outcomes.selective, 1);
  assert.ok(r.trace.some((l) => /SELECT u\d only p\d/.test(l)));
});

test.run();
