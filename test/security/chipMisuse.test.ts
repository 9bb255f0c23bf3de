/**
 * Issue 8, point 5: chip misuse. Each misuse is tried twice: on a bare real
 * chip (test/helpers/chipBench.ts: the command the SAM would send, in a real
 * session), and through the real system path — the server, the admin SAM's
 * decision record, the migration SAMs, with the test as a hostile relay where
 * an honest server would never ask. Each is refused by the chip or the admin
 * SAM (or the migration SAM), with the code and check named, and changes no
 * chip area, migration SAM record or admin SAM record.
 *
 * The system world: alice's SRC-1 (old phone), DST-1 (new phone) and X-1 (a
 * third phone) which already holds the same provider's item, mainActive.
 * Migration A moves SRC-1's item with no destination named; X-1 offers itself
 * and is turned away; DST-1 takes it and A is held right after the format
 * (its download waits) for the misuses of a pending migration; then A
 * completes, for the misuses of a committed one. Migration R (DST-1 onwards)
 * is cancelled before its upload, for an upload out of a restored area.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { steering, type Steering } from '../../src/testing/steering.ts';
import type { MigrationResult, TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import { CHALLENGE_BYTES, chipProof, fromB64, Secret, seededRng, toB64 } from '../../src/crypto/index.ts';
import { ChipBench } from '../helpers/chipBench.ts';
import { locate } from '../helpers/invariants.ts';
import { buildWorld, valueFor, type World } from '../helpers/world.ts';
import { asServer, isAttackId, checkChained, chipFrameOf, hostileTerminal, recording, refusalOf, relay, requestTo, state, type Seen } from './relay.ts';

const WAIT_MS_MAX = 10_000;

async function until(what: string, ok: () => boolean): Promise<void> {
  for (const end = Date.now() + WAIT_MS_MAX; !ok(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- on a bare real chip ----------------------------------------------------------------------

const chip = suite('chip misuse, on a real chip (issue 8, point 5)');
const AREAS = ['a-provisioned', 'a-loaded', 'a-active', 'a-locked'] as const;
let bench: ChipBench;

chip.before(async () => {
  bench = await ChipBench.open({ serial: 'MISUSE-1', areas: AREAS, rng: seededRng('chip-misuse') });
  const steps = {
    'a-provisioned': ['FORMAT'],
    'a-loaded': ['FORMAT', 'DOWNLOAD'],
    'a-active': ['FORMAT', 'DOWNLOAD', 'ACTIVATE'],
    'a-locked': ['FORMAT', 'DOWNLOAD', 'ACTIVATE', 'LOCK'],
  } as const;
  for (const area of AREAS) {
    for (const event of steps[area]) {
      const r = await bench.apply(area, event);
      assert.ok(r.ok, `${event} on ${area}: ${JSON.stringify(r)}`);
    }
  }
  assert.equal(
    AREAS.map((a) => bench.state(a)),
    ['provisioned', 'loaded', 'mainActive', 'locked'],
  );
});
chip.after(async () => {
  await bench.close();
});

chip('misuse (chip): activate without download — a formatted, empty area refuses ACTIVATE (AREA_STATE) and changes nothing', async () => {
  const before = bench.dump();
  const r = await bench.apply('a-provisioned', 'ACTIVATE');
  assert.equal(r, { ok: false, code: 'AREA_STATE', message: 'area a-provisioned is provisioned; ACTIVATE is not allowed there' });
  assert.is(bench.dump(), before);
  bench.checkStored('after the refused activate');
});

chip('misuse (chip): download into a mainActive area — the download session does not open (AREA_STATE), nor into a locked one', async () => {
  const before = bench.dump();
  for (const [area, state] of [
    ['a-active', 'mainActive'],
    ['a-locked', 'locked'],
  ] as const) {
    const r = await bench.apply(area, 'DOWNLOAD');
    assert.equal(r, { ok: false, code: 'AREA_STATE', message: `area ${area} is ${state}; a download session can not open` });
  }
  assert.is(bench.dump(), before);
});

chip('misuse (chip): upload from a non-locked area — provisioned, loaded and mainActive areas refuse the upload session (AREA_STATE)', async () => {
  const before = bench.dump();
  for (const [area, state] of [
    ['a-provisioned', 'provisioned'],
    ['a-loaded', 'loaded'],
    ['a-active', 'mainActive'],
  ] as const) {
    const r = await bench.apply(area, 'UPLOAD');
    assert.equal(r, { ok: false, code: 'AREA_STATE', message: `area ${area} is ${state}; a upload session can not open` });
  }
  // The locked area does give its item up under its temp key: the refusals above are the lifecycle's, not a broken key.
  const locked = await bench.apply('a-locked', 'UPLOAD');
  assert.ok(locked.ok && locked.data !== undefined, 'a locked area uploads');
  assert.is(bench.dump(), before);
});

chip.run();

// ---- through the real system ------------------------------------------------------------------

const sys = suite('chip misuse, through the real system (issue 8, point 5)');

let world: World;
let seen: () => Seen[];
let x1: ChipRuntime;
let third: TerminalRuntime;
let migA = '';
let aDone: Promise<MigrationResult>;
/** While set, the real server's requests of these types wait at the migration SAMs. */
const hold = new Set<string>();
let keepAlive: NodeJS.Timeout | undefined;

const steer: Steering = {
  beforeRequest: (party, env) => (party.startsWith('migration-sam/') && hold.has(env.type) && !isAttackId(env.id) ? { holdMs: 25 } : undefined),
};

const msam = () => `migration-sam/${world.providers[0]!}`;
const area = () => world.providers[0]!;

sys.before(async () => {
  // The parties' timers are unref'd; held requests and retries run on them, so the suite keeps the process up.
  keepAlive = setInterval(() => {}, 1_000);
  world = await buildWorld({ items: 1, record: true, system: { intercept: steering(steer) } });
  world.onMessage.push(() => checkChained(world));
  seen = () => recording(world);
  const { system } = world;
  x1 = await system.addChip('X-1');
  third = await system.addTerminal('third');
  system.insertChip(third, x1);
  await system.issue(x1, [{ area: area(), provider: area(), value: valueFor('emoney', 7) }]);
  system.connectToServer(third);
  await third.login(world.user, world.password);
  await third.register();
  const out = await world.oldPhone.migrateOut();
  assert.is(out.outcome, 'uploaded', out.reason);
  migA = out.mig;
});

sys.after(async () => {
  hold.clear();
  try {
    await world.cleanup();
  } finally {
    clearInterval(keepAlive);
  }
});

sys(
  "misuse: download into a mainActive area — X-1, whose area is mainActive, offered as A's destination is turned away by the server before anything is formatted",
  async () => {
    const before = state(world);
    const r = await third.migrateIn({ mig: migA });
    assert.is(r.outcome, 'refused');
    assert.ok(x1.memory.get(area())?.state === 'mainActive');
    assert.is(state(world), before, 'X-1 untouched, and the decision record binds no destination');
    assert.is(world.system.adminSam.records.decisions.get(migA)?.destination, null);
  },
);

sys('scenario: A formats its real destination DST-1, and its download is held there', async () => {
  hold.add('msam.download');
  aDone = world.newPhone.migrateIn({ mig: migA });
  await until('A to format DST-1', () => world.destination.memory.get(area())?.state === 'provisioned');
  await until('A to ask for its download', () => JSON.stringify(world.system.server.migrationState(migA)).includes('downloading'));
});

sys(
  "misuse: activate without download — the admin SAM refuses to activate A's formatted destination under a pending record (DECISION_STANDS), and refuses a commit without a valid receipt (RECEIPT_REFUSED)",
  async () => {
    const seat = asServer(world, 'admin-sam');
    try {
      const before = state(world);
      const activate = seat.send('admin.activate', { session: `${migA}:S16:90`, serial: world.destination.serial }, { mig: migA, step: 'S16' });
      assert.equal(refusalOf(await seat.answerTo(activate)), {
        code: 'DECISION_STANDS',
        message: `activation needs a committed decision record, for its own destination; the record of ${migA} is pending`,
      });
      // The only way to `committed` is a receipt signed by the item's migration SAM: one it never signed is refused.
      const forged = {
        mig: migA,
        item: 0,
        serial: world.destination.serial,
        area: area(),
        provider: area(),
        kcv: toB64(new Uint8Array(16)),
        sig: toB64(new Uint8Array(64)),
      };
      const commit = seat.send('admin.commit', { receipts: [forged] }, { mig: migA, step: 'commit' });
      assert.equal(refusalOf(await seat.answerTo(commit)), { code: 'RECEIPT_REFUSED', message: `the receipt for item 0 is not signed by ${msam()}` });
      assert.equal(seat.framesOfOurSessions(), [], 'no admin session was opened toward the chip');
      assert.is(world.system.adminSam.decisionOf(migA), 'pending');
      assert.is(world.destination.memory.get(area())?.state, 'provisioned');
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
  },
);

sys(
  "misuse: a second destination while A's is bound — the admin SAM refuses to format X-1 for A (WRONG_DESTINATION), the server has no migration for the third phone (NO_MIGRATION)",
  async () => {
    const format = requestTo(seen(), 'admin-sam', 'admin.format', migA);
    const seat = asServer(world, 'admin-sam');
    try {
      const before = state(world);
      const id = seat.send('admin.format', { ...format.body, session: `${migA}:S10:91`, serial: x1.serial }, { mig: migA, step: 'S10' });
      assert.equal(refusalOf(await seat.answerTo(id)), {
        code: 'WRONG_DESTINATION',
        message: `migration ${migA} already has destination ${world.destination.serial}`,
      });
      assert.equal(seat.framesOfOurSessions(), [], 'no admin session was opened toward X-1');
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
    let code = '';
    await third.migrateIn({ mig: migA }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'NO_MIGRATION');
  },
);

sys(
  "misuse: download into a mainActive area through the real migration SAM — A's download, relayed by a hostile server to X-1, is refused by the chip (AREA_STATE); the SAM keeps the item",
  async () => {
    const download = requestTo(seen(), msam(), 'msam.download', migA);
    const heldBefore = JSON.stringify(
      world.system.providers
        .get(area())!
        .migrationSam.held()
        .map((h) => [h.data, h.counter, h.receipt]),
    );
    const chipsBefore = JSON.stringify(
      [...world.system.chips.values()].map((c) => c.memory.list()),
      (_k, v: unknown) => (v instanceof Uint8Array ? toB64(v) : v),
    );
    const seat = asServer(world, msam());
    const evil = hostileTerminal(x1);
    try {
      const session = `${migA}:S14:92`;
      const id = seat.send('msam.download', { session, grant: download.body.grant }, { mig: migA, step: 'S14', item: 0 });
      const challenge = await seat.next('the download challenge', (e) => e.type === 'frame' && e.body.session === session);
      const answer = await relay(seat, evil, challenge);
      assert.equal(refusalOf(answer), { code: 'AREA_STATE', message: `area ${area()} is mainActive; a download session can not open` });
      assert.equal(refusalOf(await seat.answerTo(id)), { code: 'AREA_STATE', message: `area ${area()} is mainActive; a download session can not open` });
      const msamNow = world.system.providers.get(area())!.migrationSam;
      assert.equal(Object.values(msamNow.states()), ['holding'], 'the item is still held, ready for its real destination');
      assert.is(JSON.stringify(msamNow.held().map((h) => [h.data, h.counter, h.receipt])), heldBefore);
      assert.is(
        JSON.stringify(
          [...world.system.chips.values()].map((c) => c.memory.list()),
          (_k, v: unknown) => (v instanceof Uint8Array ? toB64(v) : v),
        ),
        chipsBefore,
      );
    } finally {
      evil.close();
      await seat.giveBack();
    }
  },
);

sys(
  "misuse: download to a chip other than the grant's — a compromised source SRC-1, which holds A's temp key (locked), answers A's download challenge with a proof that verifies under that key; the migration SAM uses the temp key only for the serial its grant names, refuses (AUTH_FAILED) and sends no download command",
  async () => {
    const download = requestTo(seen(), msam(), 'msam.download', migA);
    const src = world.source.memory.get(area());
    assert.is(src?.state, 'locked');
    assert.ok(src?.tempKey, "the source is locked under A's temp key");
    const seat = asServer(world, msam());
    try {
      const before = state(world);
      const session = `${migA}:S14:94`;
      const id = seat.send('msam.download', { session, grant: download.body.grant }, { mig: migA, step: 'S14', item: 0 });
      const first = await seat.next('the download challenge', (e) => (e.type === 'frame' && e.body.session === session) || e.corr === id);
      if (first.type !== 'frame') throw new Error(`the SAM answered the download with ${JSON.stringify(first.body)}`);
      const challenge = chipFrameOf(first);
      if (challenge.t !== 'auth1') throw new Error(`expected the SAM's challenge, got ${challenge.t}`);
      // What SRC-1 would answer were it to take a download challenge in its locked area: its own serial, a proof under the temp key.
      const binding = { serial: world.source.serial, area: challenge.area, mig: challenge.mig, purpose: challenge.purpose };
      const rChip = seededRng('misuse-94').bytes(CHALLENGE_BYTES);
      const proof = chipProof(Secret.of(src.tempKey.slice()), binding, fromB64(challenge.r), rChip);
      const auth2 = { t: 'auth2', serial: world.source.serial, r: toB64(rChip), proof: toB64(proof) };
      seat.send('frame', { session, data: toB64(new TextEncoder().encode(JSON.stringify(auth2))) });
      const answer = await seat.next(
        'an answer to the download, or a frame after the challenge',
        (e) => e.corr === id || (e.type === 'frame' && e.body.session === session && chipFrameOf(e).t !== 'auth1'),
      );
      if (answer.type === 'frame')
        assert.unreachable(`the migration SAM went on with SRC-1 (${chipFrameOf(answer).t}): it used A's temp key for a serial A's grant does not name`);
      assert.equal(refusalOf(answer), { code: 'AUTH_FAILED', message: "the chip's proof does not verify under the granted temp key" });
      assert.equal(
        seat.framesOfOurSessions().map((f) => chipFrameOf(f).t),
        ['auth1'],
        'the SAM sent its challenge and nothing after it: no proof of its own, no download command',
      );
      assert.equal(
        Object.values(world.system.providers.get(area())!.migrationSam.states()),
        ['holding'],
        'the item is still held, ready for its real destination',
      );
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
  },
);

sys('scenario: A completes once its download is let go — the refused misuses left nothing in its way', async () => {
  hold.delete('msam.download');
  const done = await aDone;
  assert.is(done.outcome, 'completed', done.reason);
  assert.is(world.system.adminSam.decisionOf(migA), 'committed');
});

sys(
  'misuse: a second destination for a committed migration — the server has none to give (NO_MIGRATION), the admin SAM refuses to format X-1 for A (DECISION_STANDS)',
  async () => {
    let code = '';
    await third.migrateIn({ mig: migA }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'NO_MIGRATION');
    const format = requestTo(seen(), 'admin-sam', 'admin.format', migA);
    const seat = asServer(world, 'admin-sam');
    try {
      const before = state(world);
      const id = seat.send('admin.format', { ...format.body, session: `${migA}:S10:93`, serial: x1.serial }, { mig: migA, step: 'S10' });
      assert.equal(refusalOf(await seat.answerTo(id)), {
        code: 'DECISION_STANDS',
        message: `a destination can be formatted only while the record is pending; the record of ${migA} is committed`,
      });
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
  },
);

sys(
  'misuse: the source reconnecting after the commit, asking to be restored — its migrate-out is refused at the preflight, the admin SAM refuses the restore (DECISION_STANDS), a cancel gets "committed"',
  async () => {
    const before = state(world);
    const again = await world.oldPhone.migrateOut();
    assert.is(again.outcome, 'refused');
    assert.ok(again.mig !== migA, 'a new migration, refused: the committed one is not reopened');
    assert.ok((again.reason ?? '').includes('mainActive'), `refused because the source's areas are not mainActive: ${again.reason}`);
    assert.equal(await world.oldPhone.cancel(migA), { mig: migA, decision: 'committed' });
    const seat = asServer(world, 'admin-sam');
    try {
      const id = seat.send('admin.restore', { session: `${migA}:rollback:94`, serial: world.source.serial }, { mig: migA, step: 'rollback' });
      assert.equal(refusalOf(await seat.answerTo(id)), {
        code: 'DECISION_STANDS',
        message: `the source is restored only under an aborted decision record; the record of ${migA} is committed`,
      });
      assert.equal(seat.framesOfOurSessions(), [], 'no admin session was opened toward SRC-1');
    } finally {
      await seat.giveBack();
    }
    assert.is(state(world), before, 'SRC-1 stays locked, DST-1 spendable, the record committed');
    const [where] = [...locate(world).values()];
    assert.equal(where!.spendable, [world.destination.serial]);
  },
);

sys(
  'misuse: upload from a non-locked area — an upload grant used after its migration was rolled back (the source is mainActive again) is refused by the fenced migration SAM (MIGRATION_ABORTED) and leaves its store empty',
  async () => {
    // Migration R from DST-1, cancelled while its upload request is still on its way to the migration SAM.
    hold.add('msam.upload');
    let cancel: Promise<unknown> | undefined;
    world.newPhone.onProgress((p) => {
      if (p.step === 'S5' && !cancel) cancel = world.oldPhone.cancel(p.mig);
    });
    const out = await world.newPhone.migrateOut();
    assert.is(out.outcome, 'rolledBack', out.reason);
    assert.equal(await cancel, { mig: out.mig, decision: 'aborted' });
    assert.is(world.destination.memory.get(area())?.state, 'mainActive', 'the source of R has its main key back');
    const upload = requestTo(seen(), msam(), 'msam.upload', out.mig, 0);
    const seat = asServer(world, msam());
    try {
      const before = state(world);
      const id = seat.send('msam.upload', { session: `${out.mig}:S7:95`, grant: upload.body.grant }, { mig: out.mig, step: 'S7', item: 0 });
      assert.equal(refusalOf(await seat.answerTo(id)), {
        code: 'MIGRATION_ABORTED',
        message: `migration ${out.mig} was aborted; this SAM is fenced and refuses every upload for it`,
      });
      assert.equal(seat.framesOfOurSessions(), [], 'no upload session was opened toward the restored area');
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
    // The server's own upload request, late (it was held until now), meets the same refusal.
    hold.delete('msam.upload');
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(world.system.parties().map((p) => p.idle()));
    assert.equal(world.system.providers.get(area())!.migrationSam.held(), [], 'the migration SAM holds nothing of R');
    assert.is(world.destination.memory.get(area())?.state, 'mainActive');
  },
);

sys.run();
