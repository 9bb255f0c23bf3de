/**
 * Normal use (protocol.md §1): a terminal acting as a reader, a provider's
 * normal SAM, the main key; the server is not involved. The receipt is public.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RemoteError } from '../../src/errors.ts';
import { buildWorld, type World } from '../helpers/world.ts';

const t = suite('normal use through a reader');
let world: World;
t.before(async () => {
  world = await buildWorld({ items: 3, register: false });
});
t.after(async () => {
  await world.cleanup();
});

async function refusal(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return (e as RemoteError).code;
  }
  return 'ACCEPTED';
}

t('pay and top up e-money; the chip\'s counter guards each write', async () => {
  const [emoney] = world.providers;
  const start = world.values[0]!;
  assert.is(start.kind, 'emoney');
  const counter = world.source.memory.get(emoney!)!.counter;
  const paid = await world.oldPhone.normalUse(emoney!, 'pay', emoney!, 1_234);
  assert.equal(paid, { op: 'pay', area: emoney!, kind: 'emoney', amount: 1_234, balance: (start as { balance: number }).balance - 1_234 });
  const topped = await world.oldPhone.normalUse(emoney!, 'topup', emoney!, 34);
  assert.is(topped.balance, (start as { balance: number }).balance - 1_200);
  assert.is(world.source.memory.get(emoney!)!.counter, counter + 2);
});

t('paying more than the balance is refused with INSUFFICIENT_FUNDS and changes nothing', async () => {
  const [emoney] = world.providers;
  const before = world.source.memory.get(emoney!);
  assert.is(await refusal(() => world.oldPhone.normalUse(emoney!, 'pay', emoney!, 10_000_000)), 'INSUFFICIENT_FUNDS');
  assert.equal(world.source.memory.get(emoney!), before);
});

t('a ticket can be used once', async () => {
  const tickets = world.providers[2]!;
  const used = await world.oldPhone.normalUse(tickets, 'use', tickets);
  assert.match(used.state ?? '', /used/);
  assert.is(await refusal(() => world.oldPhone.normalUse(tickets, 'use', tickets)), 'TICKET_USED');
});

t('a transit fare is paid with use', async () => {
  const transit = world.providers[1]!;
  const before = (await world.oldPhone.normalUse(transit, 'balance', transit)).balance!;
  const after = await world.oldPhone.normalUse(transit, 'use', transit, 180);
  assert.is(after.balance, before - 180);
});

t('an area the chip does not hold is refused with AREA_ABSENT', async () => {
  assert.is(await refusal(() => world.oldPhone.normalUse(world.providers[0]!, 'balance', 'no-such-area')), 'AREA_ABSENT');
});

t.run();
