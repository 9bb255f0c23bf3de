/**
 * The user's receipt (issue 22, point 4): a migration ends with one file the
 * user can check offline; it holds no secret; each provider's migration SAM
 * keeps an audit record of what moved.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyReceiptFile } from '../src/cli/receipt.verify.ts';
import { buildWorld } from './helpers/world.ts';

test('a completed migration gives the new phone a receipt that verifies, with each item and its amount', async () => {
  const world = await buildWorld({ items: 3 });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    const receipt = world.newPhone.receiptOf(done);
    assert.ok(receipt, 'the result carries a receipt');
    console.log(JSON.stringify(receipt, null, 1).slice(0, 3000));
    const verdict = verifyReceiptFile(receipt!, world.system.receiptKeys());
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
  } finally {
    await world.cleanup();
  }
});

test.run();
