/**
 * protocol.md §4.5 under message faults: every link loses, repeats or
 * reorders (and delays) up to 30% of the messages sent through it. Requests
 * are retransmitted until answered, duplicates are answered from the inbox,
 * stalled chip sessions time out and their steps retry: every migration
 * still ends `completed`, invariants 1 and 2 hold after every delivered
 * message, balances are conserved and the SAM stores end empty.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAST_TIMING } from '../../src/timing.ts';
import type { FaultPolicy } from '../../src/transport/faulty.link.ts';
import { driveMigration } from '../helpers/driver.ts';
import { checkInvariants, spendableWorth } from '../helpers/invariants.ts';
import { buildWorld } from '../helpers/world.ts';

const CASES: Array<[string, FaultPolicy]> = [
  ['30% of messages dropped', { drop: 0.3 }],
  ['30% of messages duplicated', { duplicate: 0.3 }],
  ['30% of messages reordered', { reorder: 0.3 }],
  ['30% delayed up to 40 ms (reordering across links)', { delay: 0.3, delayMaxMs: 40 }],
  ['10% dropped, 10% duplicated, 10% reordered, 10% delayed', { drop: 0.1, duplicate: 0.1, reorder: 0.1, delay: 0.1, delayMaxMs: 40 }],
];

for (const [name, policy] of CASES) {
  test(`${name}: a 2-item migration ends completed, nothing duplicated or lost`, async () => {
    const world = await buildWorld({ items: 2, system: { timing: FAST_TIMING } });
    let checks = 0;
    world.onMessage.push(() => {
      checks++;
      checkInvariants(world);
    });
    try {
      const worth = spendableWorth(world);
      world.system.setFaults(policy);
      const r = await driveMigration(world, { timeoutMs: 120_000 });
      world.system.setFaults(null);
      assert.is(r.state, 'completed');
      assert.is(spendableWorth(world), worth, 'balances conserved');
      for (const [p, prov] of world.system.providers) assert.equal(prov.migrationSam.held(), [], `${p}'s store is empty`);
      console.log(`    ${name}: completed in ${r.ms} ms, ${checks} invariant checks`);
    } finally {
      await world.cleanup();
    }
  });
}

test.run();
