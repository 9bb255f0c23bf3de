/**
 * Selective migration (issue 22 point 2, protocol.md §3 "Only some
 * providers"), end to end on an embedded system (real LMDB, real crypto):
 * only the chosen providers' items move, the others stay spendable on the
 * source and are never named in any request; a provider down or refusing at
 * the preflight is left behind at the user's choice, and a second migration
 * moves it once it is back; the refusals leave the source untouched.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { MigrationStatus } from '../src/actors/status.ts';
import { FAST_TIMING } from '../src/timing.ts';
import { checkInvariants, spendableWorth } from './helpers/invariants.ts';
import { untouched } from './helpers/untouched.ts';
import { buildWorld, type World } from './helpers/world.ts';

const stateOf = (world: World, chip: 'source' | 'destination', area: string) => world[chip].memory.list().find((a) => a.area === area)?.state ?? 'absent';

async function balanceOn(phone: World['oldPhone'], provider: string): Promise<number | string> {
  try {
    const r = await phone.normalUse(provider, 'balance', provider);
    return r.balance ?? r.state ?? 'read';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

function statusOf(world: World, mig: string): MigrationStatus {
  const s = world.system.server.statuses().find((m) => m.mig === mig);
  assert.ok(s, `status knows ${mig}`);
  return s!;
}

const t = suite('selective migration');

t('--only: the chosen provider moves, the others stay spendable on the source and are never locked', async () => {
  const world = await buildWorld({ items: 3 });
  try {
    world.onMessage.push(() => checkInvariants(world));
    const [emoney, transit, ticket] = world.providers as [string, string, string];
    const worth = spendableWorth(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial, only: [emoney] });
    assert.is(out.outcome, 'uploaded', out.reason);
    assert.equal(
      out.items.map((i) => i.provider),
      [emoney],
    );
    // The lock covered the chosen area only: the others are mainActive, with no temp key, and spendable.
    assert.is(stateOf(world, 'source', emoney), 'locked');
    for (const p of [transit, ticket]) {
      assert.is(stateOf(world, 'source', p), 'mainActive', `${p} was not locked`);
      assert.is(world.source.memory.list().find((a) => a.area === p)!.tempKey, null, `${p} got no temp key`);
    }
    assert.is(await balanceOn(world.oldPhone, transit), (world.values[1] as { balance: number }).balance, 'a not-chosen item reads on the source');
    const paid = await world.oldPhone.normalUse(transit, 'pay', transit, 10);
    assert.is(paid.balance, (world.values[1] as { balance: number }).balance - 10, 'a not-chosen item is spent on the source mid-migration');

    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed', done.reason);
    assert.equal(
      done.outcomes?.map((o) => [o.provider, o.outcome]),
      [
        [emoney, 'moved'],
        [transit, 'notChosen'],
        [ticket, 'notChosen'],
      ],
    );
    assert.equal(
      world.destination.memory.list().map((a) => [a.area, a.state]),
      [[emoney, 'mainActive']],
      'the destination holds only the chosen item',
    );
    assert.is(await balanceOn(world.newPhone, emoney), (world.values[0] as { balance: number }).balance);
    assert.match(String(await balanceOn(world.oldPhone, ticket)), /Show/, 'the not-chosen ticket reads on the source');
    assert.is(spendableWorth(world), worth - 10, 'conserved (less the payment made on the source)');
    const st = statusOf(world, out.mig);
    assert.equal(
      st.items.map((i) => [i.provider, i.outcome]),
      [
        [emoney, 'moved'],
        [transit, 'notChosen'],
        [ticket, 'notChosen'],
      ],
    );
    assert.match(st.items[1]!.state, /spendable on the source/);
  } finally {
    await world.cleanup();
  }
});

t('refusals: an unknown provider, nothing chosen, a provider refusing without --leave-behind: refused, nothing changed', async () => {
  const world = await buildWorld({ items: 2, untrustingProviders: ['p1-transit'] });
  try {
    const unknown = await world.oldPhone.migrateOut({ only: ['p0-emoney', 'no-such-provider'] });
    assert.is(unknown.outcome, 'refused');
    assert.match(unknown.reason ?? '', /unknown provider\(s\) no-such-provider/);
    untouched(world);
    const none = await world.oldPhone.migrateOut({ only: [] });
    assert.is(none.outcome, 'refused');
    assert.match(none.reason ?? '', /none of the chip's items is chosen/);
    untouched(world);
    const asToday = await world.oldPhone.migrateOut();
    assert.is(asToday.outcome, 'refused');
    assert.match(asToday.reason ?? '', /p1-transit/);
    untouched(world);
    // Choosing only the provider that answers is not a refusal.
    const chosen = await world.oldPhone.migrateOut({ only: ['p0-emoney'] });
    assert.is(chosen.outcome, 'uploaded', chosen.reason);
  } finally {
    await world.cleanup();
  }
});

t('a provider that refuses the preflight is left behind at the user’s choice; the rest move', async () => {
  const world = await buildWorld({ items: 3, untrustingProviders: ['p1-transit'] });
  try {
    world.onMessage.push(() => checkInvariants(world));
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial, leaveBehind: 'unavailable' });
    assert.is(out.outcome, 'uploaded', out.reason);
    assert.equal(
      out.outcomes?.map((o) => [o.provider, o.outcome]),
      [
        ['p0-emoney', 'uploaded'],
        ['p2-ticket', 'uploaded'],
        ['p1-transit', 'leftBehind'],
      ],
    );
    assert.match(out.outcomes![2]!.reason ?? '', /NOT_TRUSTED|UNTRUSTED/);
    assert.is(stateOf(world, 'source', 'p1-transit'), 'mainActive');
    assert.is(typeof (await balanceOn(world.oldPhone, 'p1-transit')), 'number', 'the left-behind item is spendable on the source');
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed', done.reason);
    assert.equal(
      world.destination.memory
        .list()
        .map((a) => a.area)
        .sort(),
      ['p0-emoney', 'p2-ticket'],
    );
  } finally {
    await world.cleanup();
  }
});

t('a provider stopped during the preflight is left behind; once back, a second migration moves it; conserved', async () => {
  const timing = { ...FAST_TIMING, preflightMs: 300 };
  const world = await buildWorld({ items: 3, system: { timing } });
  try {
    const worth = spendableWorth(world);
    const down = 'p1-transit';
    await world.system.party(`migration-sam/${down}`).stop();
    // The runtime's timers do not hold the process open; this test waits on one (the preflight deadline).
    const awake = setInterval(() => {}, 50);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial, leaveBehind: 'unavailable' }).finally(() => clearInterval(awake));
    assert.is(out.outcome, 'uploaded', out.reason);
    const left = out.outcomes?.find((o) => o.provider === down);
    assert.is(left?.outcome, 'leftBehind');
    assert.match(left?.reason ?? '', /did not answer the preflight/);
    assert.is(stateOf(world, 'source', down), 'mainActive');
    const paid = await world.oldPhone.normalUse(down, 'pay', down, 5);
    assert.is(paid.balance, (world.values[1] as { balance: number }).balance - 5, 'the left-behind item is spent on the source');
    const first = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(first.outcome, 'completed', first.reason);
    assert.equal(statusOf(world, out.mig).items.find((i) => i.provider === down)?.outcome, 'leftBehind');

    await world.system.restart(`migration-sam/${down}`);
    world.onMessage.push(() => checkInvariants(world));
    // The source holds the first migration's locked backups; the destination its activated areas.
    const again = await world.oldPhone.migrateOut({ destination: world.destination.serial, only: [down] });
    assert.is(again.outcome, 'uploaded', again.reason);
    assert.is(stateOf(world, 'source', down), 'locked');
    const second = await world.newPhone.migrateIn({ mig: again.mig });
    assert.is(second.outcome, 'completed', second.reason);
    for (const p of world.providers) assert.is(stateOf(world, 'destination', p), 'mainActive', `${p} is active on the destination`);
    for (const p of world.providers) assert.is(stateOf(world, 'source', p), 'locked', `${p} is the source's locked backup`);
    assert.is(await balanceOn(world.newPhone, down), (world.values[1] as { balance: number }).balance - 5);
    assert.is(spendableWorth(world), worth - 5, 'conserved across both migrations');
    for (const prov of world.system.providers.values()) assert.equal(prov.migrationSam.held(), []);
  } finally {
    await world.cleanup();
  }
});

t.run();
