/**
 * Issue 8, point 2: replays. Every byte replayed here was captured by the
 * runtime's envelope tap during real migrations on real actors (real crypto,
 * LMDB in a temp folder): session frames as the terminals delivered them to
 * the chips, grants as the server sent them to the migration SAMs, admin
 * requests and receipts as the server sent them to the admin SAM. The test
 * then plays the hostile relay — a phone's terminal held against a chip, or
 * the server on a SAM's link — and sends them again later: in the same
 * migration, in another migration, or to another chip. Each is refused with
 * the code and the check named below, and no chip area, migration SAM record
 * or admin SAM record changes (compared byte for byte).
 *
 * The world: alice's SRC-1 (old phone), DST-1 (new phone) and DST-2 (a third
 * phone). Migration A moves two items SRC-1 -> DST-1 and completes; then
 * migration B moves them on DST-1 -> DST-2 and is held right after formatting
 * DST-2 (its downloads wait), so the replays meet a committed migration, a
 * pending one, a locked source, a formatted destination and a live chip. At
 * the end B is let go and must complete: the replays disturbed nothing.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { steering, type Steering } from '../../src/testing/steering.ts';
import type { TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import type { MigrationResult } from '../../src/actors/terminal.actor.ts';
import { fromB64 } from '../../src/crypto/index.ts';
import { decodeChipFrame } from '../../src/transport/chip.frames.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import { locate } from '../helpers/invariants.ts';
import { buildWorld, type World } from '../helpers/world.ts';
import { asServer, isAttackId, checkChained, chipSession, hostileTerminal, recording, refusalOf, requestTo, sessionAt, state, type Seen } from './relay.ts';

const WAIT_MS_MAX = 10_000;

async function until(what: string, ok: () => boolean): Promise<void> {
  for (const end = Date.now() + WAIT_MS_MAX; !ok(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const t = suite('replay (issue 8, point 2)');

let world: World;
let seen: Seen[];
let migA = '';
let migB = '';
let dst2: ChipRuntime;
let third: TerminalRuntime;
let bDone: Promise<MigrationResult>;
/** While set, the real server's msam.download requests wait at the migration SAMs (B stays formatted, not downloaded). */
let holdDownloads = false;
/** The parties' timers do not keep a process up (they are unref'd); held requests and retries run on them, so the suite does. */
let keepAlive: NodeJS.Timeout | undefined;

const steer: Steering = {
  beforeRequest: (party, env) =>
    holdDownloads && party.startsWith('migration-sam/') && env.type === 'msam.download' && !isAttackId(env.id) ? { holdMs: 25 } : undefined,
};

const msamOf = (i: number) => `migration-sam/${world.providers[i]!}`;

t.before(async () => {
  keepAlive = setInterval(() => {}, 1_000);
  world = await buildWorld({ items: 2, record: true, system: { intercept: steering(steer) } });
  world.onMessage.push(() => checkChained(world));
  const { system } = world;
  dst2 = await system.addChip('DST-2');
  third = await system.addTerminal('third');
  system.insertChip(third, dst2);
  system.connectToServer(third);
  await third.login(world.user, world.password);
  await third.register();

  const outA = await world.oldPhone.migrateOut({ destination: world.destination.serial });
  assert.is(outA.outcome, 'uploaded', outA.reason);
  const inA = await world.newPhone.migrateIn({ mig: outA.mig });
  assert.is(inA.outcome, 'completed', inA.reason);
  migA = outA.mig;

  const outB = await world.newPhone.migrateOut({ destination: dst2.serial });
  assert.is(outB.outcome, 'uploaded', outB.reason);
  migB = outB.mig;
  holdDownloads = true;
  bDone = third.migrateIn({ mig: migB });
  await until('B to format DST-2', () => dst2.memory.list().length === 2 && dst2.memory.list().every((a) => a.state === 'provisioned'));
  await until('B to ask for its downloads', () => JSON.stringify(system.server.migrationState(migB)).includes('downloading'));
  seen = recording(world);
});

t.after(async () => {
  holdDownloads = false;
  try {
    await world.cleanup();
  } finally {
    clearInterval(keepAlive);
  }
});

/** Replays a recorded chip session, frame by frame, from a hostile terminal held against `chip`; returns the chip's answers. */
async function replaySession(chip: ChipRuntime, frames: ReturnType<typeof chipSession>['toChip'], session: string) {
  const evil = hostileTerminal(chip);
  try {
    const answers = [];
    for (const f of frames) answers.push(await evil.exchange(session, fromB64(f.env.body.data)));
    return answers;
  } finally {
    evil.close();
  }
}

t(
  "replay: migration A's upload session (S7), replayed to its source SRC-1 after A committed, is refused (AUTH_FAILED: the SAM's proof is bound to the chip's fresh challenge)",
  async () => {
    const session = sessionAt(seen, world.source.id, migA, 'S7');
    const rec = chipSession(seen, world.source.id, session);
    assert.equal(
      rec.toChip.map((f) => f.frame.t),
      ['auth1', 'auth3'],
      'the recorded upload session: challenge, proof with the read command (no close frame: the next session ends it)',
    );
    const before = state(world);
    const [challenge, proof] = await replaySession(world.source, rec.toChip, session);
    // The area is locked under A's temp key, so the replayed challenge is answered — with a new challenge of the chip's own.
    assert.is(challenge!.t, 'auth2');
    const recorded = rec.fromChip.find((f) => f.t === 'auth2')!;
    assert.ok(
      challenge!.t === 'auth2' && recorded.t === 'auth2' && challenge!.r !== recorded.r,
      'the chip answers with a fresh challenge, not the recorded one',
    );
    // The recorded proof (and the read command sealed with it) was made for the old challenge.
    assert.equal(refusalOf(proof!), { code: 'AUTH_FAILED', message: "the SAM's proof does not verify under the active key" });
    assert.is(state(world), before, 'no chip area, SAM store or admin record changed');
  },
);

t(
  "replay: migration A's activate session (S16), replayed to DST-1 while migration B holds it locked, is refused (AUTH_FAILED) and the area stays locked",
  async () => {
    const session = sessionAt(seen, world.destination.id, migA, 'S16');
    const rec = chipSession(seen, world.destination.id, session);
    assert.equal(
      rec.toChip.map((f) => f.frame.t),
      ['auth1', 'auth3'],
      'the recorded activate session: challenge, proof with the one batch that activates every area',
    );
    assert.ok(
      world.destination.memory.list().every((a) => a.state === 'locked' && a.holder === migB),
      "DST-1 is B's locked source",
    );
    const before = state(world);
    const [challenge, proof] = await replaySession(world.destination, rec.toChip, session);
    assert.is(challenge!.t, 'auth2', 'an admin challenge is answered (K_chip)');
    assert.equal(refusalOf(proof!), { code: 'AUTH_FAILED', message: "the SAM's proof does not verify under the active key" });
    assert.is(state(world), before, 'DST-1 stays locked: nothing became spendable twice');
  },
);

t("replay: migration A's lock session (S3) of SRC-1, replayed to another chip (DST-2), is refused (AUTH_FAILED)", async () => {
  const session = sessionAt(seen, world.source.id, migA, 'S3');
  const rec = chipSession(seen, world.source.id, session);
  assert.is(rec.toChip[0]!.frame.t, 'auth1');
  const before = state(world);
  const [challenge, proof] = await replaySession(dst2, rec.toChip, session);
  assert.ok(challenge!.t === 'auth2' && challenge!.serial === dst2.serial, 'DST-2 answers as itself');
  assert.equal(refusalOf(proof!), { code: 'AUTH_FAILED', message: "the SAM's proof does not verify under the active key" });
  assert.is(state(world), before);
});

t(
  "replay: migration A's download session (S14), replayed into migration B's formatted destination DST-2 (another chip), is refused (AUTH_FAILED)",
  async () => {
    const session = sessionAt(seen, world.destination.id, migA, 'S14');
    const rec = chipSession(seen, world.destination.id, session);
    assert.equal(
      rec.toChip.map((f) => f.frame.t),
      ['auth1', 'auth3'],
      'the recorded download session: challenge, proof with the download command',
    );
    const area = rec.toChip[0]!.frame.t === 'auth1' ? rec.toChip[0]!.frame.area : '';
    assert.is(dst2.memory.get(area)?.state, 'provisioned', "DST-2's area waits for B's download under B's temp key");
    const before = state(world);
    const [challenge, proof] = await replaySession(dst2, rec.toChip, session);
    assert.is(challenge!.t, 'auth2', 'the provisioned area answers a download challenge');
    assert.equal(refusalOf(proof!), { code: 'AUTH_FAILED', message: "the SAM's proof does not verify under the active key" });
    assert.is(state(world), before, 'DST-2 is still provisioned and empty');
  },
);

t(
  "replay: migration A's download session (S14), replayed to its own destination DST-1 (now locked by B), is refused at the challenge (AREA_STATE)",
  async () => {
    const session = sessionAt(seen, world.destination.id, migA, 'S14');
    const rec = chipSession(seen, world.destination.id, session);
    const area = rec.toChip[0]!.frame.t === 'auth1' ? rec.toChip[0]!.frame.area : '';
    const before = state(world);
    const [challenge, proof] = await replaySession(world.destination, rec.toChip, session);
    assert.equal(refusalOf(challenge!), { code: 'AREA_STATE', message: `area ${area} is locked; a download session can not open` });
    assert.equal(refusalOf(proof!), { code: 'FRAME_REJECTED', message: 'no challenge is outstanding for this session' });
    assert.is(state(world), before);
  },
);

t(
  "replay: a relayed frame envelope replayed verbatim (same message id) is dropped as a duplicate; under a new id the chip's session refuses it (FRAME_REJECTED); neither runs anything again",
  async () => {
    const session = sessionAt(seen, world.destination.id, migA, 'S16');
    const rec = chipSession(seen, world.destination.id, session);
    const auth3 = rec.toChip[1]!;
    // The bytes exactly as the new phone's terminal delivered them, on a link that carries that terminal's name.
    const [mine, theirs] = memoryLinkPair(auth3.env.from, world.destination.id);
    const got: AnyEnvelope[] = [];
    mine.onMessage((b) => got.push(decodeEnvelope(b)));
    world.destination.attach('terminal/replayer', theirs, auth3.env.from);
    const before = state(world);
    try {
      mine.send(auth3.bytes);
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(got, [], 'a frame is a notice: a repeat of its id is dropped, unanswered');
      // The same frame under an id the chip has not seen: the session it belonged to is over, so the chip refuses it.
      const fresh = { ...auth3.env, id: `${auth3.env.from}#n00000000.999999` };
      mine.send(new TextEncoder().encode(JSON.stringify(fresh)));
      await until('the chip to answer the replay under a new id', () => got.length > 0);
      assert.equal(
        got.map((e) => e.type),
        ['frame'],
      );
      const answer = decodeChipFrame(fromB64((got[0] as Extract<AnyEnvelope, { type: 'frame' }>).body.data));
      assert.equal(refusalOf(answer), { code: 'FRAME_REJECTED', message: 'no challenge is outstanding for this session' });
      assert.is(state(world), before);
    } finally {
      mine.close();
    }
  },
);

t(
  "replay: migration A's upload and download grants, replayed to the migration SAM as part of migration B, are refused (GRANT_REFUSED: bound to another mig)",
  async () => {
    const upload = requestTo(seen, msamOf(0), 'msam.upload', migA, 0);
    const download = requestTo(seen, msamOf(0), 'msam.download', migA, 0);
    const seat = asServer(world, msamOf(0));
    try {
      const before = state(world);
      const up = seat.send('msam.upload', { session: `${migB}:S7:90`, grant: upload.body.grant }, { mig: migB, step: 'S7', item: 0 });
      assert.equal(refusalOf(await seat.answerTo(up)), { code: 'GRANT_REFUSED', message: 'GRANT_BINDING: the grant is bound to another mig' });
      const down = seat.send('msam.download', { session: `${migB}:S14:91`, grant: download.body.grant }, { mig: migB, step: 'S14', item: 0 });
      assert.equal(refusalOf(await seat.answerTo(down)), { code: 'GRANT_REFUSED', message: 'GRANT_BINDING: the grant is bound to another mig' });
      // The same grants, relabelled as another item or the other purpose, are refused by the binding too.
      const item = seat.send('msam.upload', { session: `${migA}:S7:92`, grant: upload.body.grant }, { mig: migA, step: 'S7', item: 1 });
      assert.equal(refusalOf(await seat.answerTo(item)), { code: 'GRANT_REFUSED', message: 'GRANT_BINDING: the grant is bound to another item' });
      const purpose = seat.send('msam.download', { session: `${migA}:S14:93`, grant: upload.body.grant }, { mig: migA, step: 'S14', item: 0 });
      assert.equal(refusalOf(await seat.answerTo(purpose)), { code: 'GRANT_REFUSED', message: 'GRANT_BINDING: the grant is bound to another purpose' });
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
  },
);

t("replay: migration A's upload and download grants, replayed in A after it completed, are refused (UNEXPECTED: the item is cleared)", async () => {
  const upload = requestTo(seen, msamOf(1), 'msam.upload', migA, 1);
  const download = requestTo(seen, msamOf(1), 'msam.download', migA, 1);
  const seat = asServer(world, msamOf(1));
  try {
    const before = state(world);
    const up = seat.send('msam.upload', { session: `${migA}:S7:94`, grant: upload.body.grant }, { mig: migA, step: 'S7', item: 1 });
    assert.equal(refusalOf(await seat.answerTo(up)), { code: 'UNEXPECTED', message: `UPLOAD_REQUESTED is not expected by item:${migA}:1 in state "cleared"` });
    const down = seat.send('msam.download', { session: `${migA}:S14:95`, grant: download.body.grant }, { mig: migA, step: 'S14', item: 1 });
    assert.equal(refusalOf(await seat.answerTo(down)), {
      code: 'UNEXPECTED',
      message: `DOWNLOAD_REQUESTED is not expected by item:${migA}:1 in state "cleared"`,
    });
    assert.equal(seat.framesOfOurSessions(), [], 'no session was opened toward any chip');
    assert.is(state(world), before);
  } finally {
    await seat.giveBack();
  }
});

t(
  "replay: a grant request replayed verbatim (same message id) is answered from the migration SAM's inbox with the answer it got then, and runs nothing again",
  async () => {
    const bytes = seen.find((s) => s.party === msamOf(0) && s.direction === 'in' && s.env.type === 'msam.upload' && s.env.mig === migB && s.env.item === 0)!;
    assert.ok(bytes, "B's upload request was recorded");
    const seat = asServer(world, msamOf(0));
    try {
      const before = state(world);
      seat.sendBytes(bytes.bytes);
      const answer = await seat.answerTo(bytes.env.id);
      assert.is(answer.type, 'msam.uploaded', 'the stored answer');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(seat.framesOfOurSessions(), [], 'no upload session was opened again');
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
  },
);

t(
  "replay: a chip's recorded answer (SRC-1's auth2 in A's lock session), replayed to the admin SAM in a new session, is refused (AUTH_FAILED: it answers another challenge)",
  async () => {
    const session = sessionAt(seen, world.source.id, migA, 'S3');
    const auth2 = seen.find((s) => s.party === world.source.id && s.direction === 'out' && s.env.type === 'frame' && s.env.body.session === session)!;
    assert.ok(auth2 && auth2.env.type === 'frame');
    const seat = asServer(world, 'admin-sam');
    try {
      const before = state(world);
      const fresh = `${migA}:S1:97`;
      const id = seat.send('admin.identify', { session: fresh, purpose: 'source' }, { step: 'S1' });
      await seat.next('a challenge', (e) => e.type === 'frame' && e.body.session === fresh);
      seat.send('frame', { session: fresh, data: auth2.env.type === 'frame' ? auth2.env.body.data : '' });
      assert.equal(refusalOf(await seat.answerTo(id)), {
        code: 'AUTH_FAILED',
        message: "the chip's proof does not verify under K_chip for the serial it claims",
      });
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
  },
);

t(
  "replay: migration A's lock request, replayed after A committed or for another chip (also B's, while B is pending), is refused by the decision record (DECISION_STANDS)",
  async () => {
    const lockA = requestTo(seen, 'admin-sam', 'admin.lock', migA);
    const lockB = requestTo(seen, 'admin-sam', 'admin.lock', migB);
    const seat = asServer(world, 'admin-sam');
    try {
      const before = state(world);
      const again = seat.send('admin.lock', { ...lockA.body, session: `${migA}:S3:98` }, { mig: migA, step: 'S3' });
      assert.equal(refusalOf(await seat.answerTo(again)), {
        code: 'DECISION_STANDS',
        message: `the source can be locked only while the record is pending, and only the source it was created for; the record of ${migA} is committed`,
      });
      const other = seat.send('admin.lock', { ...lockB.body, serial: dst2.serial, session: `${migB}:S3:99` }, { mig: migB, step: 'S3' });
      assert.equal(refusalOf(await seat.answerTo(other)), {
        code: 'DECISION_STANDS',
        message: `the source can be locked only while the record is pending, and only the source it was created for; the record of ${migB} is pending`,
      });
      assert.equal(seat.framesOfOurSessions(), [], 'no admin session was opened');
      assert.is(state(world), before, 'no temp key made, no record changed');
    } finally {
      await seat.giveBack();
    }
  },
);

t("replay: migration A's activate request, replayed for another chip or into migration B, is refused by the decision record (DECISION_STANDS)", async () => {
  const activateA = requestTo(seen, 'admin-sam', 'admin.activate', migA);
  const seat = asServer(world, 'admin-sam');
  try {
    const before = state(world);
    for (const serial of [dst2.serial, world.source.serial]) {
      const id = seat.send('admin.activate', { ...activateA.body, serial, session: `${migA}:S16:${serial}` }, { mig: migA, step: 'S16' });
      assert.equal(refusalOf(await seat.answerTo(id)), {
        code: 'DECISION_STANDS',
        message: `activation needs a committed decision record, for its own destination; the record of ${migA} is committed`,
      });
    }
    for (const serial of [dst2.serial, world.destination.serial]) {
      const id = seat.send('admin.activate', { ...activateA.body, serial, session: `${migB}:S16:${serial}` }, { mig: migB, step: 'S16' });
      assert.equal(refusalOf(await seat.answerTo(id)), {
        code: 'DECISION_STANDS',
        message: `activation needs a committed decision record, for its own destination; the record of ${migB} is pending`,
      });
    }
    assert.equal(seat.framesOfOurSessions(), [], 'no admin session was opened');
    assert.is(state(world), before);
  } finally {
    await seat.giveBack();
  }
});

t("replay: migration A's commit (its signed download receipts), replayed into migration B, is refused (RECEIPT_REFUSED) and B stays pending", async () => {
  const commitA = requestTo(seen, 'admin-sam', 'admin.commit', migA);
  const seat = asServer(world, 'admin-sam');
  try {
    const before = state(world);
    const id = seat.send('admin.commit', commitA.body, { mig: migB, step: 'commit' });
    assert.equal(refusalOf(await seat.answerTo(id)), {
      code: 'RECEIPT_REFUSED',
      message: 'the receipt for item 0 is bound to another migration, chip, area or provider',
    });
    assert.is(world.system.adminSam.decisionOf(migB), 'pending');
    assert.is(state(world), before);
  } finally {
    await seat.giveBack();
  }
});

t('after every replay, migration B completes as if none had happened', async () => {
  holdDownloads = false;
  const done = await bDone;
  assert.is(done.outcome, 'completed', done.reason);
  for (const [ref, where] of locate(world)) {
    assert.equal(where.spendable, [dst2.serial], `item ${ref} is spendable on DST-2 only`);
    assert.equal(where.heldBySam, [], `item ${ref} is in no migration SAM`);
  }
  assert.is(world.system.adminSam.decisionOf(migA), 'committed');
  assert.is(world.system.adminSam.decisionOf(migB), 'committed');
});

t.run();
