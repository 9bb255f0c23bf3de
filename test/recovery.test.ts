/**
 * Lost-source recovery (issue 22): each provider's normal SAM keeps a
 * ledger of each area's value per chip; a user who lost the old phone
 * reports it from the new one with a second proof (the operator's one-time
 * recovery code); each provider revokes the old chip (its normal SAM refuses
 * it, AREA_REVOKED) and re-issues the items on the new chip from its ledger,
 * as an issuance: decision record, receipts, activation. Real embedded
 * system, real LMDB, real crypto.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NormalSamRuntime } from '../src/actors/normalSam.actor.ts';
import { recoverable } from '../src/actors/normalSamLedger.ts';
import type { Outbox } from '../src/runtime/outbox.ts';
import type { PartyStore } from '../src/store/party.store.ts';
import { FAST_TIMING } from '../src/timing.ts';
import { checkInvariants } from './helpers/invariants.ts';
import { buildWorld, type World } from './helpers/world.ts';
import { refusal } from './helpers/refusal.ts';
import { asServer, refusalOf } from './security/relay.ts';

/** Waits (bounded) until `cond` holds; the system runs on the real clock, so this is liveness, not a timing check. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 800; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.unreachable(`never: ${what}`);
}

const t = suite('recovery: a lost phone, its items re-issued from the providers’ ledgers');
let world: World;

t.before(async () => {
  world = await buildWorld({ items: 3 });
  world.onMessage.push(() => checkInvariants(world));
});
t.after(async () => {
  await world.cleanup();
});

const normalSam = (p: string) => world.system.providers.get(p)!.normalSam as NormalSamRuntime;
const areasOf = (serial: 'source' | 'destination') =>
  world[serial].memory
    .list()
    .filter((a) => a.state !== 'absent')
    .map((a) => `${a.area}:${a.state}`)
    .sort();

/** The value each provider's ledger holds for the source chip, per area. */
function ledgerOfSource(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of world.providers) {
    for (const e of normalSam(p).ledger.entriesOf(world.source.serial)) {
      const v = recoverable(e);
      out[e.area] = v.kind === 'ticket' ? (v.used ? 1 : 0) : v.balance;
    }
  }
  return out;
}

t('the ledger follows normal use and an issuance: a pay, a balance read, an issue order committed', async () => {
  const [p0, p1, p2] = world.providers as [string, string, string];
  const paid = await world.oldPhone.normalUse(p0, 'pay', p0, 321);
  await world.oldPhone.normalUse(p1, 'balance', p1);
  await world.oldPhone.normalUse(p2, 'use', p2);
  const order = world.system.issueOrder({
    provider: p0,
    serial: world.source.serial,
    area: 'gift',
    value: { kind: 'emoney', currency: 'JPY', balance: 777, ref: 'ab'.repeat(16) },
  });
  const issued = await world.oldPhone.issue([order]);
  assert.is(issued.outcome, 'completed', issued.reason);
  const ledger = ledgerOfSource();
  assert.is(ledger[p0], paid.balance, 'the pay is in the ledger');
  assert.is(ledger[p1], (world.values[1] as { balance: number }).balance, 'the balance read is in the ledger');
  assert.is(ledger[p2], 1, 'the used ticket is in the ledger');
  assert.is(ledger.gift, 777, 'the issued item entered the ledger once its issuance committed');
  assert.is(normalSam(p0).ledger.db.get(`in:${world.source.serial}:gift`), undefined, 'nothing left staged');
});

t('a report without the right second proof is refused and changes nothing', async () => {
  const before = { ledger: ledgerOfSource(), src: areasOf('source'), dst: areasOf('destination') };
  assert.match(await refusal(world.newPhone.recover(world.source.serial, '00112233445566778899')), /^RECOVERY_REFUSED: the recovery code is wrong/);
  const code = await world.system.server.recoveryCode(world.user);
  assert.match(await refusal(world.newPhone.recover(world.source.serial, `${code.slice(0, -1)}x`)), /^RECOVERY_REFUSED/);
  assert.equal(ledgerOfSource(), before.ledger);
  assert.equal(areasOf('source'), before.src);
  assert.equal(areasOf('destination'), before.dst);
  // still spendable on the old phone: nothing was revoked
  const r = await world.oldPhone.normalUse(world.providers[1]!, 'balance', world.providers[1]!);
  assert.ok(r.balance !== undefined);
  for (const p of world.providers) assert.is(normalSam(p).ledger.revocationsOf(world.source.serial).length, 0);
});

t('a report for a chip that is not the user’s is refused', async () => {
  const code = await world.system.server.recoveryCode(world.user);
  assert.match(await refusal(world.newPhone.recover('NOT-MINE', code)), /^NOT_OWNER: chip NOT-MINE is not registered to alice/);
  assert.match(await refusal(world.newPhone.recover(world.destination.serial, code)), /^RECOVERY_REFUSED: the lost chip and the new chip are the same/);
});

t('recovery: revoked everywhere, each item re-issued from the ledger, the old phone refused', async () => {
  const ledger = ledgerOfSource();
  const code = await world.system.server.recoveryCode(world.user);
  // The first report waits: p0's migration SAM asked its normal SAM to revoke, and the test holds that link.
  const p0 = world.providers[0]!;
  const seat = asServer(world, `migration-sam/${p0}`, `normal-sam/${p0}`);
  const first = world.newPhone.recover(world.source.serial, code);
  await seat.next('a revocation request', (e) => e.type === 'nsam.revoke');
  // The report carries the recovery code: it waits in RAM, never on the phone's disk.
  const onDisk = () => [...(world.newPhone as unknown as { store: PartyStore }).store.outbox.getRange()].filter((e) => e.value.env.type === 'recover.report');
  const waiting = () => (world.newPhone as unknown as { runtime: { outbox: Outbox } }).runtime.outbox.waitingFor('server', 'recover.report');
  assert.is(onDisk().length, 0, 'no report (no recovery code) in the outbox on disk');
  const [firstId] = waiting();
  assert.ok(firstId, 'the report waits in RAM');
  // The user reports again (the first command was given up): the newer report replaces the waiting one.
  const second = world.newPhone.recover(world.source.serial, code);
  assert.match(await refusal(first), /^REPLACED: the lost phone was reported again/);
  assert.is(waiting().length, 1, 'one report waits');
  assert.is.not(waiting()[0], firstId, 'the replaced report is no longer sent again');
  await seat.giveBack();
  const done = await second;
  assert.equal(waiting(), [], 'answered: the phone waits on no report');
  assert.is(onDisk().length, 0);
  assert.equal(
    done.providers.map((p) => p.outcome),
    ['revoked', 'revoked', 'revoked'],
  );
  assert.ok(done.issuance, 'an issuance placed the items');
  assert.is(done.issuance.outcome, 'completed', done.issuance.reason);
  assert.is(world.system.adminSam.decisionOf(done.issuance.mig), 'committed', 'under a committed decision record');
  let sumNew = 0;
  for (const [area, amount] of Object.entries(ledger)) {
    const p = area === 'gift' ? world.providers[0]! : area;
    const r = await world.newPhone.normalUse(p, 'balance', area);
    const got = r.kind === 'ticket' ? (/, used$/.test(r.state ?? '') ? 1 : 0) : r.balance!;
    assert.is(got, amount, `${area}: the new chip holds the ledger's value`);
    sumNew += got;
  }
  assert.is(
    sumNew,
    Object.values(ledger).reduce((a, b) => a + b, 0),
    'balances conserved against the ledger',
  );
  for (const [area] of Object.entries(ledger)) {
    const p = area === 'gift' ? world.providers[0]! : area;
    assert.match(await refusal(world.oldPhone.normalUse(p, 'pay', area, 1)), /^AREA_REVOKED/, `${area} refused on the lost chip`);
  }
  for (const [p, prov] of world.system.providers) assert.equal(prov.migrationSam.held(), [], `${p}'s migration SAM holds nothing`);
});

t('a rogue server cannot wipe spendable areas: no revocation, or one for another chip, is refused (NOT_REVOKED)', async () => {
  const before = areasOf('destination');
  assert.ok(before.length > 0 && before.every((a) => a.endsWith(':mainActive')));
  const lost = world.system.server.recovery.lostWipe(world.source.serial)!;
  assert.is(lost.revocations.length, lost.items.length, 'one revocation per revoked area');
  const seat = asServer(world, 'admin-sam');
  try {
    const items = lost.items; // the same areas, the same providers: only the chip differs
    const forged = lost.revocations.map((r) => `${r.slice(0, -4)}AAAA`);
    const asks = [
      { serial: world.destination.serial, revocations: lost.revocations, why: 'revocations of another chip' },
      { serial: world.source.serial, revocations: forged, why: 'revocations with a forged signature' },
    ];
    for (const [n, ask] of asks.entries()) {
      const id = seat.send(
        'admin.wipe-lost',
        { session: `rogue-${n}`, serial: ask.serial, items, revocations: ask.revocations },
        { mig: 'lost-x', step: 'rollback' },
      );
      const r = refusalOf(await seat.answerTo(id));
      assert.is(r.code, 'NOT_REVOKED', ask.why);
    }
    const noMig = seat.send('admin.wipe-lost', { session: 'rogue-9', serial: world.destination.serial, items, revocations: ['rv1.e30.x'] });
    assert.is(refusalOf(await seat.answerTo(noMig)).code, 'NOT_REVOKED', 'checked whatever the headers');
  } finally {
    await seat.giveBack();
  }
  assert.equal(areasOf('destination'), before, 'nothing wiped');
});

t('the lost phone, found again: refused to pay or move out, and its revoked areas are wiped when it connects', async () => {
  const before = areasOf('source');
  assert.ok(before.length > 0 && before.every((a) => a.endsWith(':mainActive')), 'revoked, yet still mainActive on the chip');
  for (const p of world.providers) assert.match(await refusal(world.oldPhone.normalUse(p, 'balance', p)), /^AREA_REVOKED: chip SRC-1 was reported lost/);
  const out = await world.oldPhone.migrateOut({});
  assert.is(out.outcome, 'refused', out.reason);
  assert.match(out.reason ?? '', /AREA_REVOKED/);
  // Its chip identified at S1: the server took its phone's channel and the admin SAM wiped the revoked areas.
  const onDisk = () => [...world.source.memory.areas.getRange()].map((e) => `${e.value.area}:${e.value.state}`);
  await until(() => onDisk().every((a) => a.endsWith(':absent')), 'the lost chip is wiped');
  assert.equal(onDisk().length, before.length, "every revoked area, read from the chip's LMDB store, is absent");
  await until(() => world.system.server.lostWipeState(world.source.serial) === 'wiped', "the wipe ends, its phone's channel released");
  // Wiped: the chip itself has nothing left to spend.
  for (const p of world.providers) assert.match(await refusal(world.oldPhone.normalUse(p, 'pay', p, 1)), /^AREA_ABSENT: area .* does not exist on this chip/);
  assert.is(world.system.providers.get(world.providers[0]!)!.migrationSam.recoveries.db.get(world.source.serial)?.to, world.destination.serial);
});

t('a report again is answered the same, and places nothing twice', async () => {
  const code = await world.system.server.recoveryCode(world.user);
  // the code is fresh: it binds to this lost chip at its first use
  const again = await world.newPhone.recover(world.source.serial, code);
  assert.equal(
    again.providers.map((p) => p.outcome),
    ['revoked', 'revoked', 'revoked'],
  );
  const before = areasOf('destination');
  assert.is(again.issuance, null, 'every item is on this chip already: nothing is placed again');
  assert.is(again.outcome, 'completed');
  assert.equal(areasOf('destination'), before);
  for (const p of world.providers) assert.is(normalSam(p).ledger.entriesOf(world.source.serial).length, 0, 'the lost chip left the ledger');
});

t.run();

const later = suite('recovery: a provider away at the report');
later("its areas are re-issued at the next report, and wiped on the found-again chip at the chip's next identification", async () => {
  const w = await buildWorld({ items: 3 });
  try {
    const [p0, p1, p2] = w.providers as [string, string, string];
    for (const p of w.providers) await w.oldPhone.normalUse(p, 'balance', p); // the ledgers know each item
    const onOld = () => Object.fromEntries([...w.source.memory.areas.getRange()].map((e) => [e.value.area, e.value.state]));
    await w.system.party(`migration-sam/${p2}`).stop();
    const code = await w.system.server.recoveryCode(w.user);
    const first = await w.newPhone.recover(w.source.serial, code);
    assert.is(first.outcome, 'partial', `${p2} was away`);
    // Found again: the chip identifies (a registration) and the two revoked areas are wiped; p2's, never revoked, stays.
    await w.oldPhone.register();
    await until(() => w.system.server.lostWipeState(w.source.serial) === 'wiped', 'the first wipe ends');
    assert.equal(onOld(), { [p0]: 'absent', [p1]: 'absent', [p2]: 'mainActive' });
    await w.system.restart(`migration-sam/${p2}`);
    const second = await w.newPhone.recover(w.source.serial, code);
    assert.is(second.outcome, 'completed');
    assert.match(await refusal(w.oldPhone.normalUse(p2, 'pay', p2, 1)), /^AREA_REVOKED/);
    // The chip's next identification wipes what was revoked since: a second round.
    await w.oldPhone.register();
    await until(() => onOld()[p2] === 'absent', `${p2}'s area wiped on the lost chip`);
    await until(() => w.system.server.lostWipeState(w.source.serial) === 'wiped', 'the second wipe ends');
    checkInvariants(w);
  } finally {
    await w.cleanup();
  }
});

later('a provider that does not answer: the phone stops waiting (RECOVERY_PENDING), the report stands, a later one gets the orders', async () => {
  const w = await buildWorld({ items: 2, system: { timing: { ...FAST_TIMING, preflightMs: 300 } } });
  try {
    for (const p of w.providers) await w.oldPhone.normalUse(p, 'balance', p);
    const p1 = w.providers[1]!;
    const seat = asServer(w, `migration-sam/${p1}`, `normal-sam/${p1}`); // p1's revocation is never answered
    const code = await w.system.server.recoveryCode(w.user);
    // The phone's wait is an unref'd clock timer (it keeps no process alive): the test keeps this one alive meanwhile.
    const alive = setInterval(() => {}, 50);
    const pending = await refusal(w.newPhone.recover(w.source.serial, code)).finally(() => clearInterval(alive));
    assert.match(pending, /^RECOVERY_PENDING: not every provider has answered within 300 ms/);
    await seat.giveBack();
    const done = await w.newPhone.recover(w.source.serial, code);
    assert.is(done.outcome, 'completed');
    assert.equal(
      done.providers.map((p) => p.outcome),
      ['revoked', 'revoked'],
    );
  } finally {
    await w.cleanup();
  }
});

later.run();

const many = suite('recovery: more areas than one answer carries');
many('27 areas across 3 providers (each in its ledger): the first answer places 24 (partial, more waiting), the next report the rest', async () => {
  const w = await buildWorld({ items: 3 });
  try {
    const orders = w.providers.flatMap((provider, p) =>
      Array.from({ length: 9 }, (_, i) =>
        w.system.issueOrder({
          provider,
          serial: w.source.serial,
          area: `${provider}-x${i}`,
          value: { kind: 'emoney', currency: 'JPY', balance: 100 + 10 * p + i, ref: `${p}${i}`.padStart(32, 'c') },
        }),
      ),
    );
    for (const part of [orders.slice(0, 14), orders.slice(14)]) assert.is((await w.oldPhone.issue(part)).outcome, 'completed');
    const onNew = () => w.destination.memory.list().filter((a) => a.state === 'mainActive').length;
    const code = await w.system.server.recoveryCode(w.user);
    const first = await w.newPhone.recover(w.source.serial, code);
    assert.is(first.outcome, 'partial', 'every provider revoked, but one answer carries 24 orders');
    assert.is(onNew(), 24);
    const second = await w.newPhone.recover(w.source.serial, code);
    assert.is(second.outcome, 'completed');
    assert.is(onNew(), 27, 'the rest placed by the next report, nothing twice');
  } finally {
    await w.cleanup();
  }
});

many.run();
