/**
 * Rollback (protocol.md §3): a cancel before the commit point sets the admin
 * SAM's decision record to `aborted`; the migration SAMs are fenced; when the
 * source connects again the admin SAM restores its main keys; the stores are
 * cleared. The item is never spendable twice and never lost meanwhile.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkInvariants, locate, spendableWorth } from './helpers/invariants.ts';
import { FAST_TIMING } from '../src/timing.ts';
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

test('a cancel after the commit is answered with the decision that stands (committed)', async () => {
  const world = await buildWorld({ items: 1 });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    await world.newPhone.migrateIn({ mig: out.mig });
    const answer = await world.oldPhone.cancel(out.mig);
    assert.is(answer.decision, 'committed');
    assert.is(world.system.adminSam.decisionOf(out.mig), 'committed');
  } finally {
    await world.cleanup();
  }
});

async function cancelAt(step: string, phone: 'old' | 'new'): Promise<void> {
  const world = await buildWorld({ items: 2, system: { timing: FAST_TIMING } });
  world.onMessage.push(() => checkInvariants(world));
  try {
    const worth = spendableWorth(world);
    const cancels: Array<Promise<unknown>> = [];
    let mig = '';
    const trigger = (p: { step: string; mig: string }) => {
      if (p.step === step && cancels.length === 0) {
        mig = p.mig;
        // The user cancels from the other phone while this step runs.
        const other = phone === 'old' ? world.newPhone : world.oldPhone;
        cancels.push(other.cancel(p.mig));
      }
    };
    world.oldPhone.onProgress(trigger);
    world.newPhone.onProgress(trigger);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    if (out.outcome === 'uploaded') {
      const done = await world.newPhone.migrateIn({ mig: out.mig });
      assert.is(done.outcome, 'rolledBack', `the destination was answered rolledBack (cancel at ${step})`);
      // The source comes back for its keys.
      const back = await world.oldPhone.migrateOut();
      assert.is(back.outcome, 'rolledBack');
    } else {
      assert.is(out.outcome, 'rolledBack', `the source phase was answered rolledBack (cancel at ${step})`);
    }
    assert.equal(await cancels[0], { mig, decision: 'aborted' });
    assert.is(world.system.server.migrationState(mig), 'rolledBack');
    assert.ok(
      world.source.memory.list().every((a) => a.state === 'mainActive' && a.tempKey === null),
      'the source is spendable again',
    );
    assert.ok(
      world.destination.memory.list().every((a) => a.state === 'absent'),
      'the destination holds nothing',
    );
    for (const prov of world.system.providers.values()) assert.equal(prov.migrationSam.held(), []);
    assert.is(spendableWorth(world), worth);
  } finally {
    await world.cleanup();
  }
}

test('the destination deadline cancels a migration whose destination never arrives; the source gets its keys back', async () => {
  const world = await buildWorld({ items: 2, system: { timing: FAST_TIMING } });
  world.onMessage.push(() => checkInvariants(world));
  try {
    const worth = spendableWorth(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial, deadlineMs: 200 });
    assert.is(out.outcome, 'uploaded');
    for (let i = 0; i < 200 && world.system.adminSam.decisionOf(out.mig) !== 'aborted'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(world.system.adminSam.decisionOf(out.mig), 'aborted', 'the deadline aborted the migration');
    const back = await world.oldPhone.migrateOut();
    assert.is(back.outcome, 'rolledBack');
    assert.ok(world.source.memory.list().every((a) => a.state === 'mainActive'));
    assert.is(spendableWorth(world), worth);
  } finally {
    await world.cleanup();
  }
});

test('a cancel during the upload (S7) rolls back at once: the source is still here', () => cancelAt('S7', 'old'));
test('a cancel during the download (S14) wipes the destination, then restores the source when it comes back', () => cancelAt('S14', 'new'));
test('a cancel right after the format (S11) wipes the formatted destination', () => cancelAt('S11', 'new'));

test.run();
