/**
 * Normal use (protocol.md §1): a terminal acting as a reader, a provider's
 * normal SAM, the main key; the server is not involved. The receipt is public.
 * Spending needs a reader the provider enrolled; a top-up creates value and
 * needs the provider's authority as well: a charging reader, or a voucher.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeVoucher, generateIdentity, issueVoucher, systemRng, type Identity } from '../../src/crypto/index.ts';
import type { RemoteError } from '../../src/protocol/errors.ts';
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

/** A voucher signed by `signer` (the provider's normal SAM identity unless another is given). */
function voucher(provider: string, fields: { serial?: string; area?: string; amount: number; expiresAt?: number }, signer?: Identity): string {
  return encodeVoucher(
    issueVoucher(
      {
        provider,
        serial: fields.serial ?? world.source.serial,
        area: fields.area ?? provider,
        amount: fields.amount,
        expiresAt: fields.expiresAt ?? Date.now() + 60_000,
      },
      signer ?? world.system.normalSamIdentity(provider),
      systemRng,
    ),
  );
}

/** The area's record as the chip's store holds it (what must not change when a top-up is refused). */
const area = (name: string) => world.source.memory.get(name);

t("pay and top up e-money with a voucher; the chip's counter guards each write", async () => {
  const [emoney] = world.providers;
  const start = world.values[0]!;
  assert.is(start.kind, 'emoney');
  const counter = area(emoney!)!.counter;
  const paid = await world.oldPhone.normalUse(emoney!, 'pay', emoney!, 1_234);
  assert.equal(paid, { op: 'pay', area: emoney!, kind: 'emoney', amount: 1_234, balance: (start as { balance: number }).balance - 1_234 });
  const topped = await world.oldPhone.normalUse(emoney!, 'topup', emoney!, undefined, voucher(emoney!, { amount: 34 }));
  assert.is(topped.balance, (start as { balance: number }).balance - 1_200);
  assert.is(area(emoney!)!.counter, counter + 2);
});

t("a top-up without the provider's authority is refused NOT_AUTHORISED and the balance is unchanged (read from the chip's store)", async () => {
  const [emoney] = world.providers;
  const before = area(emoney!);
  assert.is(await refusal(() => world.oldPhone.normalUse(emoney!, 'topup', emoney!, 777)), 'NOT_AUTHORISED');
  assert.equal(area(emoney!), before);
});

t('a voucher is redeemed once, for its own chip, area and amount, before it expires, and only if the provider signed it', async () => {
  const [emoney] = world.providers;
  const before = area(emoney!);
  const cases: Array<[string, string, number | undefined]> = [
    ['another chip', voucher(emoney!, { serial: world.destination.serial, amount: 50 }), undefined],
    ['another area', voucher(emoney!, { area: world.providers[1]!, amount: 50 }), undefined],
    ['another amount', voucher(emoney!, { amount: 50 }), 5_000],
    ['expired', voucher(emoney!, { amount: 50, expiresAt: Date.now() - 1 }), undefined],
    ['signed by a stranger', voucher(emoney!, { amount: 50 }, generateIdentity(systemRng)), undefined],
    ["another provider's", voucher(world.providers[1]!, { area: emoney!, amount: 50 }), undefined],
  ];
  for (const [what, token, amount] of cases) {
    assert.is(await refusal(() => world.oldPhone.normalUse(emoney!, 'topup', emoney!, amount, token)), 'VOUCHER_REFUSED', what);
    assert.equal(area(emoney!), before, `${what}: the chip's area is unchanged`);
  }
  const once = voucher(emoney!, { amount: 10 });
  const credited = await world.oldPhone.normalUse(emoney!, 'topup', emoney!, undefined, once);
  const after = area(emoney!);
  assert.is(after!.counter, before!.counter + 1);
  assert.is(await refusal(() => world.oldPhone.normalUse(emoney!, 'topup', emoney!, undefined, once)), 'VOUCHER_REFUSED');
  assert.equal(area(emoney!), after, 'a second redemption changes nothing');
  assert.is((await world.oldPhone.normalUse(emoney!, 'balance', emoney!)).balance, credited.balance);
});

t('a charging reader the provider enrolled tops up without a voucher; a reader whose enrolment is revoked can do nothing', async () => {
  const [emoney] = world.providers;
  const key = world.system.publicKeyOf(world.oldPhone.id);
  world.system.enrollReader(emoney!, key, world.oldPhone.id, ['spend', 'charge']);
  const before = (await world.oldPhone.normalUse(emoney!, 'balance', emoney!)).balance!;
  const topped = await world.oldPhone.normalUse(emoney!, 'topup', emoney!, 100);
  assert.is(topped.balance, before + 100);
  world.system.revokeReader(emoney!, key);
  const record = area(emoney!);
  assert.is(await refusal(() => world.oldPhone.normalUse(emoney!, 'pay', emoney!, 1)), 'NOT_AUTHORISED');
  assert.is(await refusal(() => world.oldPhone.normalUse(emoney!, 'topup', emoney!, 100)), 'NOT_AUTHORISED');
  assert.equal(area(emoney!), record);
  world.system.enrollReader(emoney!, key, world.oldPhone.id, ['spend']);
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
