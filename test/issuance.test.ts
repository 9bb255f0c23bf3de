/**
 * Issuance (issue 16): a new item reaches a chip only by its provider's
 * signed issue order, as a migration without a source: the admin SAM formats
 * the area with a temp key, the provider's migration SAM checks the order
 * and downloads the item with the main key, the admin SAM commits and
 * activates. A forged, altered, expired or spent order changes no balance:
 * the issuance rolls back and the chip is as before.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeIssueOrder, encodeIssueOrder, generateIdentity, createIssueOrder, systemRng } from '../src/crypto/index.ts';
import { encodeValue, type ValueItem } from '../src/actors/value.ts';
import { checkInvariants } from './helpers/invariants.ts';
import { buildWorld, valueFor, type World } from './helpers/world.ts';
import { refusal } from './helpers/refusal.ts';

const t = suite("issuance: value created only by a provider's issue order");
let world: World;

t.before(async () => {
  world = await buildWorld({ items: 2 });
  world.onMessage.push(() => checkInvariants(world));
});
t.after(async () => {
  await world.cleanup();
});

/** The chip's areas that exist (a wiped area is `absent`). */
const areasOf = (w: World) =>
  w.destination.memory
    .list()
    .filter((a) => a.state !== 'absent')
    .map((a) => `${a.area}:${a.state}`)
    .sort();
const emoney = (i: number, balance: number): ValueItem => ({ kind: 'emoney', currency: 'JPY', balance, ref: (valueFor('emoney', i) as { ref: string }).ref });

t('an order the provider signed puts its item on the chip: S9-S17, then spendable there only', async () => {
  const [p0] = world.providers;
  const value = emoney(7, 4_321);
  const order = world.system.issueOrder({ provider: p0!, serial: world.destination.serial, area: 'gift', value });
  const done = await world.newPhone.issue([order]);
  assert.is(done.outcome, 'completed', done.reason);
  assert.equal(areasOf(world), ['gift:mainActive']);
  const r = await world.newPhone.normalUse(p0!, 'balance', 'gift');
  assert.is(r.balance, 4_321);
  for (const [p, prov] of world.system.providers) assert.equal(prov.migrationSam.held(), [], `${p}'s migration SAM holds nothing`);
  assert.is(world.system.adminSam.decisionOf(done.mig), 'committed');
  const keys = [...world.system.adminSam.records.tempKeys.getRange()].map((e) => e.value).filter((k) => k.mig === done.mig);
  assert.is(keys.length, 1, 'one temp key record, for the one item');
  assert.ok(
    keys.every((k) => k.key === null),
    'the temp key ended with the issuance (its check values stay)',
  );
});

t('a forged order (signed by another key) is refused by the migration SAM: rolled back, the chip as before', async () => {
  const [, p1] = world.providers;
  const before = areasOf(world);
  const forger = generateIdentity(systemRng);
  const forged = encodeIssueOrder(
    createIssueOrder(
      { provider: p1!, serial: world.destination.serial, area: 'forged', expiresAt: Date.now() + 3_600_000, item: encodeValue(valueFor('emoney', 1)) },
      forger,
      systemRng,
    ),
  );
  const out = await world.newPhone.issue([forged]);
  assert.is(out.outcome, 'rolledBack');
  assert.match(out.reason ?? '', /ORDER_REFUSED/);
  assert.equal(areasOf(world), before, 'no area was left on the chip');
  for (const [p, prov] of world.system.providers) assert.equal(prov.migrationSam.held(), [], `${p}'s migration SAM holds nothing`);
});

t('an altered order (another area than signed) and an expired one are refused; nothing is created', async () => {
  const [p0] = world.providers;
  const before = areasOf(world);
  const good = world.system.issueOrder({ provider: p0!, serial: world.destination.serial, area: 'bonus', value: valueFor('emoney', 2) });
  const o = decodeIssueOrder(good);
  const { sig, ...body } = { ...o, area: 'other' };
  const altered = `io1.${Buffer.from(JSON.stringify(body)).toString('base64url')}.${sig}`;
  const out = await world.newPhone.issue([altered]);
  assert.is(out.outcome, 'rolledBack');
  assert.match(out.reason ?? '', /ORDER_REFUSED: the issue order is not signed/);
  const expired = world.system.issueOrder({ provider: p0!, serial: world.destination.serial, area: 'late', value: valueFor('emoney', 3), ttlMs: -1 });
  const late = await world.newPhone.issue([expired]);
  assert.is(late.outcome, 'rolledBack');
  assert.match(late.reason ?? '', /ORDER_REFUSED: the order expired/);
  assert.equal(areasOf(world), before);
});

t('an order for another chip is refused up front; malformed orders get a clear error', async () => {
  const [p0] = world.providers;
  const other = world.system.issueOrder({ provider: p0!, serial: 'NOT-MINE', value: valueFor('emoney', 4) });
  assert.match(await refusal(world.newPhone.issue([other])), /^NOT_OWNER: chip NOT-MINE is not registered to alice/);
  assert.match(await refusal(world.newPhone.issue(['io1.e30.AAAA'])), /^BAD_BODY: migrate.in body is invalid: body.orders.0: not an issue order/);
});

t('a spent order never creates value twice: cancelled after it was used, the same order is refused', async () => {
  const [p0] = world.providers;
  const before = areasOf(world);
  const order = world.system.issueOrder({ provider: p0!, serial: world.destination.serial, area: 'once', value: emoney(5, 900) });
  // The user cancels while the item downloads (S14): the migration SAM has used the order by then.
  let cancelled: Promise<unknown> | undefined;
  world.newPhone.onProgress((p) => {
    if (p.step === 'S14' && !cancelled) cancelled = world.oldPhone.cancel(p.mig);
  });
  const first = await world.newPhone.issue([order]);
  assert.ok(cancelled, 'the cancel was sent during S14');
  assert.equal(await cancelled, { mig: first.mig, decision: 'aborted' });
  assert.is(first.outcome, 'rolledBack', first.reason);
  assert.equal(areasOf(world), before, 'the formatted area was wiped');
  const again = await world.newPhone.issue([order]);
  assert.is(again.outcome, 'rolledBack');
  assert.match(again.reason ?? '', /ORDER_REFUSED: the order was used already/);
  assert.equal(areasOf(world), before);
  for (const [p, prov] of world.system.providers) assert.equal(prov.migrationSam.held(), [], `${p}'s migration SAM holds nothing`);
});

t.run();
