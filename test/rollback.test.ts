/**
 * Rollback (protocol.md §3): a cancel before the commit point sets the admin
 * SAM's decision record to `aborted`; the migration SAMs are fenced; when the
 * source connects again the admin SAM restores its main keys; the stores are
 * cleared. The item is never spendable twice and never lost meanwhile.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkInvariants, locate, spendableWorth } from './helpers/invariants.ts';
import { buildWorld } from './helpers/world.ts';

test('a cancel before the destination arrives rolls back: source spendable again, stores empty', async () => {
  const world = await buildWorld({ items: 3 });
  world.onMessage.push(() => checkInvariants(world));
  try {
    const worth = spendableWorth(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(out.outcome, 'uploaded');

    const cancelled = await world.oldPhone.cancel(out.mig);
    assert.is(cancelled.decision, 'aborted');
    assert.is(world.system.adminSam.decisionOf(out.mig), 'aborted');

    // While the rollback waits for the source, the items stay safe in the SAMs and the source stays locked.
    for (const [, where] of locate(world)) assert.ok(where.heldBySam.length === 1 && where.lockedOnSource);
    let code = '';
    await world.newPhone.migrateIn({ mig: out.mig }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'NO_MIGRATION', 'a fenced migration takes no destination');

    // The source comes back: its main keys are restored, the SAMs clear their copies.
    const back = await world.oldPhone.migrateOut();
    assert.is(back.mig, out.mig);
    assert.is(back.outcome, 'rolledBack');
    assert.ok(world.source.memory.list().every((a) => a.state === 'mainActive' && a.tempKey === null));
    for (const prov of world.system.providers.values()) assert.equal(prov.migrationSam.held(), []);
    assert.is(spendableWorth(world), worth);
    const p = world.providers[0]!;
    const paid = await world.oldPhone.normalUse(p, 'pay', p, 10);
    assert.is(paid.balance, world.values[0]!.kind === 'emoney' ? world.values[0]!.balance - 10 : paid.balance);
    assert.is(world.system.server.migrationState(out.mig), 'rolledBack');
  } finally {
    await world.cleanup();
  }
});

test('an abort after the commit is answered with the decision that stands', async () => {
  const world = await buildWorld({ items: 1 });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    await world.newPhone.migrateIn({ mig: out.mig });
    let message = '';
    await world.oldPhone.cancel(out.mig).catch((e: Error) => (message = e.message));
    assert.match(message, /not expected|completed/);
    assert.is(world.system.adminSam.decisionOf(out.mig), 'committed');
  } finally {
    await world.cleanup();
  }
});

test.run();
