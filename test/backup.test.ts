/**
 * The end of the backup (issue 22, point 3; protocol.md §3, "After the
 * commit"): once a migration has committed, its source, locked under the
 * temp keys, is wiped when the user confirms or when the retention period
 * ends, through the admin SAM, which then deletes the temp-key records of
 * those areas. Everything is read from the parties' LMDB stores: the chip's
 * areas, the admin SAM's temp keys, the server's backup snapshot.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readMigrations } from '../src/actors/status.ts';
import type { PartyStore } from '../src/store/party.store.ts';
import { FAST_TIMING } from '../src/timing.ts';
import { checkInvariants, spendableWorth } from './helpers/invariants.ts';
import { buildWorld, type World } from './helpers/world.ts';
import { asServer, refusalOf } from './security/relay.ts';

/** Waits (bounded) until `cond` holds; the system runs on the real clock, so this is liveness, not a timing check. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 800; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.unreachable(`never: ${what}`);
}

function backupOf(world: World, mig: string) {
  return world.system.server.statuses().find((m) => m.mig === mig)?.backup;
}

/** The source's areas as its LMDB store holds them, and the admin SAM's temp-key records of the migration. */
function stores(world: World, mig: string) {
  const areas = [...world.source.memory.areas.getRange()].map((e) => e.value);
  const tempKeys = [...world.system.adminSam.records.tempKeys.getRange()].map((e) => e.value).filter((r) => r.mig === mig);
  return { areas, tempKeys };
}

async function migrate(world: World): Promise<string> {
  const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
  assert.is(out.outcome, 'uploaded');
  const done = await world.newPhone.migrateIn({ mig: out.mig });
  assert.is(done.outcome, 'completed');
  return out.mig;
}

const SHORT = { backupRetentionMs: 200, timing: FAST_TIMING };

test('after the retention period the source areas are absent and the admin SAM holds no temp key for them', async () => {
  const world = await buildWorld({ items: 2, system: SHORT });
  world.onMessage.push(() => checkInvariants(world));
  try {
    const worth = spendableWorth(world);
    const mig = await migrate(world);
    // Committed: the backup is kept, locked under the temp keys, whose records the admin SAM still has.
    const kept = stores(world, mig);
    assert.ok(kept.areas.length === 2 && kept.areas.every((a) => a.state === 'locked' || a.state === 'absent'));
    await until(() => backupOf(world, mig)?.state === 'wiped', 'the backup is wiped after its retention');
    const { areas, tempKeys } = stores(world, mig);
    assert.is(areas.length, 2);
    for (const a of areas) assert.ok(a.state === 'absent' && a.tempKey === null && a.mainKey === null && a.data === null, `${a.area} is ${a.state}`);
    assert.equal(tempKeys, [], 'the temp-key records of the wiped areas are deleted');
    assert.is(backupOf(world, mig)?.endedBy, 'retention');
    // Nothing was lost: the value is spendable on the destination, as much as before.
    assert.is(spendableWorth(world), worth);
    const p = world.providers[0]!;
    const paid = await world.newPhone.normalUse(p, 'balance', p);
    assert.ok(paid.balance !== undefined || paid.state !== undefined);
    // The old phone's reader is free again (its channel was released).
    await world.oldPhone.selectChip();
  } finally {
    await world.cleanup();
  }
});

test('the user confirms from the new phone: the backup is wiped now; status shows it, then a repeat answers "wiped"', async () => {
  const world = await buildWorld({ items: 2, system: { timing: FAST_TIMING } });
  try {
    const mig = await migrate(world);
    const before = backupOf(world, mig)!;
    assert.is(before.state, 'kept');
    assert.match(before.text, /^kept \(locked on SRC-1\) until \d{4}-/);
    assert.ok(Date.parse(before.until) > Date.now() + 13 * 24 * 3600 * 1000, 'the default retention is 14 days');
    const answer = await world.newPhone.endBackup(mig);
    assert.ok(answer.state === 'wiping' || answer.state === 'wiped', answer.state);
    await until(() => backupOf(world, mig)?.state === 'wiped', 'the confirmed backup is wiped');
    assert.ok(stores(world, mig).areas.every((a) => a.state === 'absent'));
    assert.equal(stores(world, mig).tempKeys, []);
    const after = backupOf(world, mig)!;
    assert.is(after.endedBy, 'user');
    assert.match(after.text, /^wiped at \d{4}-.*the user confirmed/);
    const again = await world.oldPhone.endBackup(mig);
    assert.is(again.state, 'wiped');
    assert.ok(again.wipedAt !== undefined);
    // The same, read from the server's store as `valmove status --json` does.
    const fromStore = readMigrations((world.system.server as unknown as { store: PartyStore }).store).find((m) => m.mig === mig)!;
    assert.is(fromStore.backup?.state, 'wiped');
  } finally {
    await world.cleanup();
  }
});

test('the source phone is offline when the retention ends: the wipe waits, and runs when it connects again', async () => {
  const world = await buildWorld({ items: 2, system: { backupRetentionMs: 300, timing: FAST_TIMING } });
  try {
    const mig = await migrate(world);
    world.system.disconnect(world.oldPhone.id);
    await until(() => backupOf(world, mig)?.state === 'waitingForSource', 'the backup waits for the source phone');
    assert.match(backupOf(world, mig)!.text, /waiting for the source phone \(terminal\/old\)/);
    assert.ok(
      stores(world, mig).areas.every((a) => a.state === 'locked'),
      'nothing is wiped while the phone is away',
    );
    assert.is(stores(world, mig).tempKeys.length, 2);
    world.system.reconnect(world.oldPhone.id);
    await until(() => backupOf(world, mig)?.state === 'wiped', 'the backup is wiped once the source phone is back');
    assert.ok(stores(world, mig).areas.every((a) => a.state === 'absent'));
    assert.equal(stores(world, mig).tempKeys, []);
  } finally {
    await world.cleanup();
  }
});

test("two backups of one source phone end together: one's release of the channel does not strand the other's wipe", async () => {
  const world = await buildWorld({ items: 2, system: { timing: FAST_TIMING } });
  world.onMessage.push(() => checkInvariants(world));
  try {
    // Two selective migrations from the same source: one backup per provider, on the same phone.
    const migs: string[] = [];
    for (const p of world.providers) {
      const out = await world.oldPhone.migrateOut({ destination: world.destination.serial, only: [p] });
      assert.is(out.outcome, 'uploaded', out.reason);
      const done = await world.newPhone.migrateIn({ mig: out.mig });
      assert.is(done.outcome, 'completed', done.reason);
      migs.push(out.mig);
    }
    // Both confirmed at once: the two wipes share the old phone's chip channel, and the first to end releases it.
    for (const mig of migs) await world.newPhone.endBackup(mig);
    for (const mig of migs) await until(() => backupOf(world, mig)?.state === 'wiped', `the backup of ${mig} is wiped`);
    for (const mig of migs) {
      assert.ok(stores(world, mig).areas.every((a) => a.state === 'absent'));
      assert.equal(stores(world, mig).tempKeys, []);
    }
  } finally {
    await world.cleanup();
  }
});

test('a confirm before the commit is refused with its reason, and changes nothing', async () => {
  const world = await buildWorld({ items: 1, system: { timing: FAST_TIMING } });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(out.outcome, 'uploaded');
    const before = stores(world, out.mig);
    let err: { code?: string; message?: string } = {};
    await world.oldPhone.endBackup(out.mig).catch((e) => (err = e));
    assert.is(err.code, 'NO_MIGRATION');
    assert.match(err.message ?? '', /a backup exists only once a migration has completed/);
    assert.equal(stores(world, out.mig), before, 'the locked source and its temp keys are as they were');
    assert.is(world.system.adminSam.decisionOf(out.mig), 'pending');
    // The migration goes on and completes; only then is there a backup.
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    assert.is(backupOf(world, out.mig)?.state, 'kept');
    // Another user's phone, or a migration that is not ours, is told the same.
    let other: { code?: string } = {};
    await world.oldPhone.endBackup('m-nosuchmig').catch((e) => (other = e));
    assert.is(other.code, 'NO_MIGRATION');
  } finally {
    await world.cleanup();
  }
});

test('the admin SAM refuses a source wipe under a pending record, whoever asks', async () => {
  const world = await buildWorld({ items: 1, system: { timing: FAST_TIMING } });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(world.system.adminSam.decisionOf(out.mig), 'pending');
    const before = stores(world, out.mig);
    const seat = asServer(world, 'admin-sam');
    const id = seat.send('admin.wipe', { session: `bk-${out.mig}:9`, serial: world.source.serial, role: 'source' }, { mig: out.mig, step: 'rollback' });
    const refusal = refusalOf(await seat.answerTo(id));
    assert.is(refusal.code, 'DECISION_STANDS');
    assert.match(refusal.message, /a source only when committed; the record of .* is pending/);
    assert.equal(stores(world, out.mig), before, 'nothing wiped, no temp key deleted');
  } finally {
    await world.cleanup();
  }
});

test.run();
