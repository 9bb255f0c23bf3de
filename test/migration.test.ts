import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RemoteError } from '../src/protocol/errors.ts';
import { checkInvariants, locate, spendableWorth } from './helpers/invariants.ts';
import { buildWorld, type World } from './helpers/world.ts';

async function payFails(_world: World, phone: World['oldPhone'], provider: string): Promise<string> {
  try {
    await phone.normalUse(provider, 'balance', provider);
  } catch (e) {
    return (e as RemoteError).code;
  }
  throw new Error(`normal use on ${provider} succeeded, it should have been refused`);
}

for (const items of [1, 3, 10]) {
  const t = suite(`full migration of ${items} item(s)`);
  let world: World;

  t.before(async () => {
    world = await buildWorld({ items });
    let checks = 0;
    world.onMessage.push(() => {
      checks++;
      checkInvariants(world);
    });
    (world as World & { checks: () => number }).checks = () => checks;
  });
  t.after(async () => {
    await world.cleanup();
  });

  t(`completes, moving every item from source to destination (invariants 1 and 2 after every message)`, async () => {
    const worthBefore = spendableWorth(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(out.outcome, 'uploaded', out.reason);
    assert.is(out.items.length, items);

    // From S3 on the source is the locked backup: normal use is refused with AREA_LOCKED.
    assert.ok(
      world.source.memory.list().every((a) => a.state === 'locked'),
      'every source area is locked after the source phase',
    );
    assert.is(await payFails(world, world.oldPhone, world.providers[0]!), 'AREA_LOCKED');

    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed', done.reason);

    for (const [ref, where] of locate(world)) {
      assert.equal(where.spendable, [world.destination.serial], `item ${ref} is spendable on the destination only`);
      assert.is(where.heldBySam.length, 0, `item ${ref} is no longer held by a migration SAM`);
    }
    assert.ok(
      world.source.memory.list().every((a) => a.state === 'locked'),
      'the source stays locked (S16: a dead backup)',
    );
    assert.ok(world.destination.memory.list().every((a) => a.state === 'mainActive'));
    assert.is(spendableWorth(world), worthBefore, 'the sum of balances is conserved');
    for (const [p, prov] of world.system.providers) assert.equal(prov.migrationSam.held(), [], `${p}'s migration SAM store is empty`);
    assert.is(world.system.adminSam.decisionOf(out.mig), 'committed');
    assert.ok((world as World & { checks: () => number }).checks() > 20 * items, 'invariants were checked after every delivered message');
  });

  t('normal use: refused on the source after completion, accepted on the destination after S16', async () => {
    const p = world.providers[0]!;
    assert.is(await payFails(world, world.oldPhone, p), 'AREA_LOCKED');
    const before = await world.newPhone.normalUse(p, 'balance', p);
    const paid = await world.newPhone.normalUse(p, 'pay', p, 100);
    assert.is(paid.balance, (before.balance ?? 0) - 100);
    // Every moved item reads back on the destination with its value intact.
    for (const [i, prov] of world.providers.entries()) {
      const r = await world.newPhone.normalUse(prov, 'balance', prov);
      const v = world.values[i]!;
      if (v.kind === 'ticket') assert.ok(r.state?.includes(v.event));
      else if (i === 0) assert.is(r.balance, v.balance - 100);
      else assert.is(r.balance, v.balance);
    }
  });

  t.run();
}
