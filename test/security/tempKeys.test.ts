/**
 * Issue 16, point 6: a temp key ends with its migration. A temp key opens
 * upload sessions on the source's locked backup, so the admin SAM deletes
 * its bytes once the item is settled: when S16 has verified every
 * destination area (completed), or when the source is back on its main keys
 * (rolled back). The record stays, `key: null`, with its key check values
 * (adminTempKeys.ts, TempKeys.endTempKeys).
 *
 * Every check reads the admin SAM's LMDB records (`records.tempKeys`), never
 * a log line: after the migration, after a cancel and restore, as the
 * settling answer leaves ("persist, then speak"), when a retried activation
 * or restore arrives, at a crash of the admin SAM in the settling turn; and
 * a lock or format session that outlived its keys is refused, with the SAM
 * still serving.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CrashSignal, type TurnPoint } from '../../src/actors/runtime.ts';
import { steering } from '../../src/testing/steering.ts';
import type { TempKeyRecord } from '../../src/store/adminSam.store.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import { decodeEnvelope } from '../../src/transport/envelope.ts';
import { driveMigration } from '../helpers/driver.ts';
import { buildWorld, settle, type World } from '../helpers/world.ts';
import { asServer, hostileTerminal, refusalOf, relay } from './relay.ts';

/** The admin SAM's temp-key records of one migration, read from its store. */
function tempKeyRecords(world: World, mig: string): TempKeyRecord[] {
  return [...world.system.adminSam.records.tempKeys.getRange()].map((e) => e.value).filter((r) => r.mig === mig);
}

const keysOnDisk = (world: World, mig: string): number => tempKeyRecords(world, mig).filter((r) => r.key !== null).length;

/** A settling answer the admin SAM sent, or a settling request it received, with how many of its migration's keys its store held then. */
interface Seen {
  direction: 'in' | 'out';
  /** The message id (a request sent again until answered arrives more than once). */
  id: string;
  type: string;
  mig: string;
  session?: string;
  keysOnDisk: number;
}

const WATCHED = ['admin.activate', 'admin.restore', 'admin.activated', 'admin.restored'];

/** The requests of `type` the admin SAM received, each at its first arrival. */
function requests(seen: Seen[], type: string): Seen[] {
  const ids = new Set<string>();
  return seen.filter((s) => s.direction === 'in' && s.type === type && !ids.has(s.id) && ids.add(s.id));
}

/**
 * An envelope tap on the admin SAM: the moment a settling answer leaves (it
 * leaves only after its turn is on disk) or a settling request arrives, the
 * store is read. `world` is the world once built (no settling message comes
 * before).
 */
function settlingTap(seen: Seen[], world: () => World | undefined) {
  return (party: string, direction: 'in' | 'out', _peer: string, bytes: Uint8Array): void => {
    const w = world();
    if (party !== 'admin-sam' || !w) return;
    const env = decodeEnvelope(bytes);
    if (!WATCHED.includes(env.type) || env.mig === undefined) return;
    const session = 'session' in env.body ? String(env.body.session) : undefined;
    seen.push({ direction, id: env.id, type: env.type, mig: env.mig, session, keysOnDisk: keysOnDisk(w, env.mig) });
  };
}

test('temp keys are gone from the admin SAM store once a migration completes (S16); each record keeps its key check values, area, provider and recipient', async () => {
  const seen: Seen[] = [];
  let built: World | undefined;
  const world = (built = await buildWorld({ items: 3, system: { envelopeTap: settlingTap(seen, () => built) } }));
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(out.outcome, 'uploaded');
    const locked = tempKeyRecords(world, out.mig);
    assert.is(locked.length, 3, 'one temp-key record per item');
    assert.ok(
      locked.every((r) => r.key instanceof Uint8Array && r.key.length === 32 && r.sourceMainKcv !== null),
      'while the migration is pending the admin SAM holds every temp key',
    );

    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    const settled = tempKeyRecords(world, out.mig);
    assert.equal(
      settled.map((r) => r.key),
      [null, null, null],
      'no temp key of the completed migration is left in the admin SAM store',
    );
    for (const r of settled) {
      const before = locked.find((l) => l.item === r.item)!;
      assert.equal(
        { ...r, destinationMainKcv: null },
        { ...before, key: null, destinationMainKcv: null },
        `item ${r.item}: area, provider, recipient and the source's key check value kept`,
      );
      assert.type(r.destinationMainKcv, 'string', `item ${r.item}: the destination's key check value (from its receipt) kept`);
    }
    // The keys went before the source backup did: it is still locked (under the temp key) on the old phone.
    assert.ok(
      world.source.memory.list().every((a) => a.state === 'locked'),
      'the source backup is not wiped yet',
    );
    const answers = seen.filter((s) => s.type === 'admin.activated');
    assert.ok(answers.length >= 1, 'the admin SAM answered the activation');
    assert.equal(
      answers.map((s) => s.keysOnDisk),
      answers.map(() => 0),
      'when admin.activated left the admin SAM, no temp key of the migration was on disk',
    );
  } finally {
    await world.cleanup();
  }
});

test("temp keys are gone from the admin SAM store once a cancelled migration's source is restored (rollback), not before", async () => {
  const seen: Seen[] = [];
  let built: World | undefined;
  const world = (built = await buildWorld({ items: 2, system: { envelopeTap: settlingTap(seen, () => built) } }));
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(out.outcome, 'uploaded');
    const cancelled = await world.oldPhone.cancel(out.mig);
    assert.is(cancelled.decision, 'aborted');
    // Aborted, but the source is still locked under the temp keys until it comes back.
    assert.is(keysOnDisk(world, out.mig), 2, 'the keys stay until the source is restored');

    const back = await world.oldPhone.migrateOut();
    assert.is(back.outcome, 'rolledBack');
    assert.ok(
      world.source.memory.list().every((a) => a.state === 'mainActive'),
      'the source is back on its main keys',
    );
    const settled = tempKeyRecords(world, out.mig);
    assert.equal(
      settled.map((r) => r.key),
      [null, null],
      'no temp key of the rolled-back migration is left in the admin SAM store',
    );
    assert.ok(
      settled.every((r) => typeof r.sourceMainKcv === 'string' && r.destinationMainKcv === null),
      "the source's key check values are kept (no destination was ever committed)",
    );
    const answers = seen.filter((s) => s.type === 'admin.restored');
    assert.ok(answers.length >= 1, 'the admin SAM answered the restore');
    assert.equal(
      answers.map((s) => s.keysOnDisk),
      answers.map(() => 0),
      'when admin.restored left the admin SAM, no temp key of the migration was on disk',
    );
  } finally {
    await world.cleanup();
  }
});

/**
 * Holds the event loop open until `p` settles: the parties' timers (a step's
 * retry after the lost answer) are unref'd, and a test waiting only on them
 * would end the process early.
 */
async function awake<T>(p: Promise<T>): Promise<T> {
  const keepAlive = setInterval(() => {}, 1_000);
  try {
    return await p;
  } finally {
    clearInterval(keepAlive);
  }
}

/**
 * The admin SAM's first answer of `type` is lost (steered into an error after
 * the work is done, as a lost reply would look): the server retries the step
 * with a new session, after the keys were deleted.
 */
async function retriedAfterKeysGone(type: 'admin.activated' | 'admin.restored'): Promise<{ world: World; seen: Seen[]; mig: string }> {
  const seen: Seen[] = [];
  let built: World | undefined;
  let lost = false;
  const world = (built = await buildWorld({
    items: 2,
    system: {
      timing: FAST_TIMING,
      envelopeTap: settlingTap(seen, () => built),
      intercept: steering({
        replaceReply(party, reply) {
          if (party !== 'admin-sam' || reply.type !== type || lost) return undefined;
          lost = true;
          return { code: 'SESSION_FAILED', message: 'steered: the answer was lost' };
        },
      }),
    },
  }));
  const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
  assert.is(out.outcome, 'uploaded');
  if (type === 'admin.activated') {
    const done = await awake(world.newPhone.migrateIn({ mig: out.mig }));
    assert.is(done.outcome, 'completed', done.reason);
  } else {
    assert.is((await world.oldPhone.cancel(out.mig)).decision, 'aborted');
    const back = await awake(world.oldPhone.migrateOut());
    assert.is(back.outcome, 'rolledBack', back.reason);
  }
  assert.ok(lost, `the first ${type} was lost`);
  return { world, seen, mig: out.mig };
}

test('a retried activation, after the temp keys are gone, is checked against the kept key check values and answered (S16)', async () => {
  const { world, seen, mig } = await retriedAfterKeysGone('admin.activated');
  try {
    const asked = requests(seen, 'admin.activate');
    assert.ok(asked.length >= 2, `the server asked again (${asked.length} activations)`);
    assert.is(new Set(asked.map((s) => s.session)).size, asked.length, 'each attempt is a new admin session');
    assert.is(asked[0]!.keysOnDisk, 2, 'the first activation found the keys');
    assert.ok(
      asked.slice(1).every((s) => s.keysOnDisk === 0),
      'every retry arrived after the keys were deleted',
    );
    const answers = seen.filter((s) => s.direction === 'out' && s.type === 'admin.activated');
    assert.ok(answers.length >= 1 && answers.every((s) => s.keysOnDisk === 0), 'the retry was answered admin.activated');
    assert.ok(
      world.destination.memory.list().every((a) => a.state === 'mainActive'),
      'the destination is spendable',
    );
    assert.equal(
      tempKeyRecords(world, mig).map((r) => r.key),
      [null, null],
    );
  } finally {
    await world.cleanup();
  }
});

test("a retried restore, after the temp keys are gone, is checked against the source's kept key check values and answered (rollback)", async () => {
  const { world, seen, mig } = await retriedAfterKeysGone('admin.restored');
  try {
    const asked = requests(seen, 'admin.restore');
    assert.ok(asked.length >= 2, `the server asked again (${asked.length} restores)`);
    assert.is(asked[0]!.keysOnDisk, 2, 'the first restore found the keys');
    assert.ok(
      asked.slice(1).every((s) => s.keysOnDisk === 0),
      'every retry arrived after the keys were deleted',
    );
    const answers = seen.filter((s) => s.direction === 'out' && s.type === 'admin.restored');
    assert.ok(answers.length >= 1 && answers.every((s) => s.keysOnDisk === 0), 'the retry was answered admin.restored');
    assert.ok(
      world.source.memory.list().every((a) => a.state === 'mainActive'),
      'the source is spendable again',
    );
    assert.equal(
      tempKeyRecords(world, mig).map((r) => r.key),
      [null, null],
    );
  } finally {
    await world.cleanup();
  }
});

test('a lock or format session that outlives its temp keys is refused (DECISION_STANDS) when the chip answers, and the admin SAM keeps serving', async () => {
  // Default timing: the sessions opened here must outlive the whole destination phase without reaching their deadline.
  const world = await buildWorld({ items: 2 });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(out.outcome, 'uploaded');
    const items = tempKeyRecords(world, out.mig).map((r) => ({ item: r.item, area: r.area, provider: r.provider, recipient: r.recipient }));
    // A second relay beside the real server (a server the SAM trusts, replaying or late) opens a lock and a format
    // session while the record is pending, and holds them at the chip's authentication.
    const seat = asServer(world, 'admin-sam', 'server-2');
    try {
      const expiresAt = Date.now() + 600_000;
      const lock = seat.send('admin.lock', { session: `${out.mig}:S3:77`, serial: world.source.serial, items, expiresAt }, { mig: out.mig, step: 'S3' });
      const format = seat.send(
        'admin.format',
        { session: `${out.mig}:S10:77`, serial: world.destination.serial, items, expiresAt },
        { mig: out.mig, step: 'S10' },
      );
      const lockChallenge = await seat.next("the lock session's challenge", (e) => e.type === 'frame' && e.body.session === `${out.mig}:S3:77`);
      const formatChallenge = await seat.next("the format session's challenge", (e) => e.type === 'frame' && e.body.session === `${out.mig}:S10:77`);

      // The real server completes the migration meanwhile: the keys are deleted at S16.
      const done = await world.newPhone.migrateIn({ mig: out.mig });
      assert.is(done.outcome, 'completed');
      assert.is(keysOnDisk(world, out.mig), 0);

      // Now the chips answer the held challenges: each session needs a key that is gone.
      const sentence = `the temp keys of ${out.mig} were deleted when its record became committed: no lock, format or grant runs for it any more`;
      for (const [chip, challenge, request] of [
        [world.source, lockChallenge, lock],
        [world.destination, formatChallenge, format],
      ] as const) {
        const terminal = hostileTerminal(chip);
        try {
          await relay(seat, terminal, challenge);
        } finally {
          terminal.close();
        }
        assert.equal(refusalOf(await seat.answerTo(request)), { code: 'DECISION_STANDS', message: sentence }, `${chip.serial}'s session`);
      }
      assert.not.ok(world.system.adminSam.isStopped, 'the admin SAM did not stop');
      assert.ok(!seat.got.some((e) => e.type === 'admin.locked' || e.type === 'admin.formatted'), 'no grant was issued');
      // Still serving: a new request is answered (here refused by the decision record, as any lock of a committed migration).
      const again = seat.send('admin.lock', { session: `${out.mig}:S3:78`, serial: world.source.serial, items, expiresAt }, { mig: out.mig, step: 'S3' });
      assert.is(refusalOf(await seat.answerTo(again)).code, 'DECISION_STANDS');
      assert.is(keysOnDisk(world, out.mig), 0, 'no key came back');
    } finally {
      await seat.giveBack();
    }
  } finally {
    await world.cleanup();
  }
});

/**
 * The admin SAM crashes in the turn that answers the activation: before its
 * commit, or after the commit and before it speaks. Found by reading its
 * state at the turn point: before-persist, the activate session is done in
 * RAM (its commit not yet written); after-persist, the store holds no key.
 */
async function crashInSettlingTurn(point: TurnPoint): Promise<void> {
  const seen: Seen[] = [];
  let built: World | undefined;
  let atCrash: { keysOnDisk: number; answered: number } | undefined;
  const world = (built = await buildWorld({
    items: 2,
    system: {
      timing: FAST_TIMING,
      envelopeTap: settlingTap(seen, () => built),
      onTurnPoint: (party, at, info) => {
        const w = built;
        if (atCrash || !w || party !== 'admin-sam' || at !== point || info.step !== 'S16') return;
        const mig = w.system.server.migrationIds()[0];
        if (mig === undefined) return;
        const onDisk = keysOnDisk(w, mig);
        const settling =
          point === 'before-persist'
            ? Object.entries(w.system.adminSam.states()).some(([k, v]) => k.startsWith(`session:${mig}:S16:`) && v === 'done')
            : onDisk === 0;
        if (!settling) return;
        atCrash = { keysOnDisk: onDisk, answered: seen.filter((s) => s.type === 'admin.activated').length };
        w.system.restarting.add(party);
        setImmediate(() => void w.system.restart(party));
        throw new CrashSignal(`admin-sam in the settling turn, ${point}`);
      },
    },
  }));
  try {
    const r = await driveMigration(world, { timeoutMs: 30_000 });
    assert.ok(atCrash, `the admin SAM crashed in the settling turn (${point})`);
    assert.is(atCrash!.answered, 0, 'nothing was answered before the crash');
    if (point === 'before-persist') assert.is(atCrash!.keysOnDisk, 2, 'a crash before the commit leaves the keys, and no answer');
    else assert.is(atCrash!.keysOnDisk, 0, 'a crash after the commit leaves no key, and the answer in the inbox');
    assert.is(r.state, 'completed');
    await settle(world);
    assert.equal(
      tempKeyRecords(world, r.mig).map((k) => k.key),
      [null, null],
      'after the restart the migration completed and the keys are gone',
    );
    const answers = seen.filter((s) => s.type === 'admin.activated');
    assert.ok(answers.length >= 1 && answers.every((s) => s.keysOnDisk === 0), 'the activation was answered after the restart, with no key on disk');
  } finally {
    await world.cleanup();
  }
}

test("a crash of the admin SAM in the activation's settling turn, before its commit, leaves the key and no answer; the retry completes and deletes it", () =>
  crashInSettlingTurn('before-persist'));
test("a crash of the admin SAM in the activation's settling turn, after its commit, leaves no key and the answer in its inbox", () =>
  crashInSettlingTurn('after-persist'));

test.run();
