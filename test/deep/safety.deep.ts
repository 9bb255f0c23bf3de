/**
 * The abstract safety model's deep runs (`npm run test:deep`; not part of
 * `npm test`, whose files end in .test.ts): the worlds too large for the
 * quick suite (test/model/safety.model.test.ts), each explored to its last
 * state, each with every reachable state keeping protocol.md §4.
 *
 * Two migrations with every fault and the rogue server at once is the
 * product of two one-migration spaces (about 14,000 states each at K=1):
 * beyond this suite's budget. The two-migration worlds below take the
 * faults and the rogue server in turns instead.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { explore, formatViolation } from '../../src/model/safety/explore.ts';
import type { SafetyOptions } from '../../src/model/safety/types.ts';

const WORLDS: Array<{ name: string; opts: SafetyOptions; statesMin: number }> = [
  {
    name: 'K=2, one migration, every fault and the rogue server',
    opts: { items: 2, migrations: 1, crashes: true, duplicates: true, losses: true, cancels: true, rogue: true, expiry: true },
    statesMin: 500_000,
  },
  {
    name: 'K=2, one migration and a stray chip a rogue server may name, every fault',
    opts: { items: 2, migrations: 1, spareChips: 1, crashes: true, duplicates: true, losses: true, cancels: true, rogue: true, expiry: true },
    statesMin: 800_000,
  },
  {
    name: 'K=3, one migration, the rogue server alone',
    opts: { items: 3, migrations: 1, honestServer: false, rogue: true, expiry: true },
    statesMin: 500_000,
  },
  {
    name: 'K=1, two migrations sharing the providers, the rogue server alone',
    opts: { items: 1, migrations: 2, honestServer: false, rogue: true, expiry: true },
    statesMin: 900_000,
  },
  {
    name: 'K=1, two migrations sharing the providers, crashes, lost answers and cancels',
    opts: { items: 1, migrations: 2, crashes: true, losses: true, cancels: true },
    statesMin: 900_000,
  },
  {
    name: 'K=1, two migrations sharing the providers, late duplicates and cancels',
    opts: { items: 1, migrations: 2, duplicates: true, cancels: true },
    statesMin: 700_000,
  },
];

for (const { name, opts, statesMin } of WORLDS) {
  test(`${name}: every reachable state keeps §4`, () => {
    const r = explore(opts);
    console.log(
      `  safety model, ${name}: ${r.states} states, ${r.transitions} transitions, ${r.ms} ms, ${r.violations.length} violations  ${JSON.stringify(opts)}`,
    );
    assert.ok(r.complete, 'the whole state space was explored');
    assert.equal(r.violations.map(formatViolation), []);
    assert.ok(r.states > statesMin, `states explored: ${r.states}`);
  });
}

test.run();
