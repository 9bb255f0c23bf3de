/**
 * The chip's real command path, frame by frame: the area lifecycle enforced
 * inside the chip's transaction, idempotent owned admin commands, and
 * session authentication that fails with the wrong slot's key or a replayed,
 * reordered or tampered frame.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { ChipConsole } from '../../src/actors/chipConsole.ts';
import { SamSessions } from '../../src/actors/samSession.ts';
import { encodeValue } from '../../src/actors/value.ts';
import { systemClock } from '../../src/clock.ts';
import { fromB64, randomSecret, seededRng, toB64, type Purpose, type Secret } from '../../src/crypto/index.ts';
import type { ErrorCode } from '../../src/protocol/errors.ts';
import { silentLogger } from '../../src/log.ts';
import { AREA_COMMANDS, AREA_STATES, areaTransition, type AreaState } from '../../src/machines/area.machine.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { decodeChipFrame, encodeJson, type ChipCommand, type ChipReply } from '../../src/transport/chip.frames.ts';

const rng = seededRng('chip-tests');
const SERIAL = 'CHIP-T1';
const kChip = randomSecret(rng);
let dir: string;
let chip: ChipRuntime;
let console_: ChipConsole;
let sessionSeq = 0;

async function setUp(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'valmove-chip-'));
  chip = new ChipRuntime({ id: `chip/${SERIAL}`, store: PartyStore.open(dir), clock: systemClock, rng, log: silentLogger });
  await chip.start({ serial: SERIAL, kChip: kChip.reveal() });
  console_ = ChipConsole.open(chip);
}

async function tearDown(): Promise<void> {
  console_.close();
  await chip.stop();
  rmSync(dir, { recursive: true, force: true });
}

type Opened = { ok: true; session: string; sams: SamSessions } | { ok: false; code: ErrorCode };

async function open(purpose: Purpose, area: string, key: Secret, mig = '-'): Promise<Opened> {
  const sams = new SamSessions(rng);
  const session = `t:${++sessionSeq}`;
  const answer = await console_.exchange(session, sams.begin({ session, area, mig, purpose }));
  const a = sams.answer(session, answer, () => key);
  if (a.kind === 'refused') return { ok: false, code: a.code };
  if (!a.proofOk) return { ok: false, code: 'AUTH_FAILED' };
  return { ok: true, session, sams };
}

async function run(o: Opened, cmd: ChipCommand): Promise<ChipReply> {
  if (!o.ok) throw new Error(`session not open: ${o.code}`);
  const r = o.sams.reply(o.session, await console_.exchange(o.session, o.sams.command(o.session, cmd)));
  if (r.kind === 'refused') return { ok: false, code: r.code, message: r.message };
  return r.reply;
}

async function admin(cmd: ChipCommand): Promise<ChipReply> {
  const o = await open('admin', '*', kChip, 'mig' in cmd ? (cmd as { mig: string }).mig : '-');
  return run(o, cmd);
}

const stateOf = (area: string): AreaState => chip.memory.get(area)?.state ?? 'absent';

interface Keys {
  temp: Secret;
  main: Secret;
}

/** Brings a fresh area into `state` through allowed commands only, owned by `mig`. */
async function areaIn(state: AreaState, area: string, mig: string): Promise<Keys> {
  const keys = { temp: randomSecret(rng), main: randomSecret(rng) };
  if (state === 'absent') return keys;
  assert.ok((await admin({ op: 'format', area, provider: 'p', key: toB64(keys.temp.reveal()), mig, step: 'S10' })).ok);
  if (state === 'provisioned') return keys;
  const dl = await open('download', area, keys.temp, mig);
  const data = toB64(encodeValue({ kind: 'points', program: 'x', balance: 5, ref: '0'.repeat(32) }));
  assert.ok((await run(dl, { op: 'download', data, key: toB64(keys.main.reveal()), mig, step: 'S14' })).ok);
  if (state === 'loaded') return keys;
  assert.ok((await admin({ op: 'activate', area, mig, step: 'S16' })).ok);
  if (state === 'mainActive') return keys;
  const lockMig = `${mig}-lock`;
  assert.ok((await admin({ op: 'lock', area, key: toB64(keys.temp.reveal()), mig: lockMig, step: 'S3' })).ok);
  return keys;
}

function commandFor(cmd: (typeof AREA_COMMANDS)[number], area: string, mig: string, keys: Keys): ChipCommand | null {
  switch (cmd) {
    case 'FORMAT':
      return { op: 'format', area, provider: 'p', key: toB64(keys.temp.reveal()), mig, step: 'X1' };
    case 'LOCK':
      return { op: 'lock', area, key: toB64(keys.temp.reveal()), mig, step: 'X2' };
    case 'ACTIVATE':
      return { op: 'activate', area, mig, step: 'X3' };
    case 'RESTORE':
      return { op: 'restore', area, mig, step: 'X4' };
    case 'WIPE':
      return { op: 'wipe', area, mig, step: 'X5' };
    case 'WIPE_REVOKED':
      return { op: 'wipeRevoked', area, mig, step: 'X6' };
    case 'DOWNLOAD':
      return null; // a download session, below
  }
}

const lifecycle = suite('chip: the area lifecycle, through the real command path');
lifecycle.before(setUp);
lifecycle.after(tearDown);

let n = 0;
for (const state of AREA_STATES) {
  for (const command of AREA_COMMANDS) {
    const allowed = areaTransition(state, command) !== null;
    const noop = (state === 'mainActive' && command === 'RESTORE') || (state === 'absent' && (command === 'WIPE' || command === 'WIPE_REVOKED'));
    const what = allowed
      ? `allowed (to ${areaTransition(state, command)})`
      : noop
        ? 'answered ok, changing nothing (already so)'
        : 'refused, and changes nothing';
    lifecycle(`${state} --${command}--> is ${what}`, async () => {
      const area = `a${++n}`;
      const mig = `m${n}`;
      const keys = await areaIn(state, area, mig);
      // the command's owner: the migration that holds the area (the lock's, once locked)
      const owner = state === 'locked' ? `${mig}-lock` : mig;
      const before = chip.memory.get(area);
      let reply: ChipReply;
      if (command === 'DOWNLOAD') {
        const dl = await open('download', area, keys.temp, owner);
        if (!dl.ok) reply = { ok: false, code: dl.code, message: 'session refused' };
        else reply = await run(dl, { op: 'download', data: toB64(new Uint8Array([1])), key: toB64(keys.main.reveal()), mig: owner, step: 'X6' });
      } else {
        reply = await admin(commandFor(command, area, owner, keys)!);
      }
      // A rollback restores and wipes every area of its migration; one it never reached is already as wanted:
      // the chip answers ok and changes nothing (the lifecycle still has no such arrow).
      const alreadyDone = (state === 'mainActive' && command === 'RESTORE') || (state === 'absent' && (command === 'WIPE' || command === 'WIPE_REVOKED'));
      if (alreadyDone) {
        assert.ok(reply.ok, `${command} on ${state} is answered ok`);
        assert.equal(chip.memory.get(area), before, 'and changes nothing');
      } else if (allowed) {
        assert.ok(reply.ok, `expected ${command} to be accepted in ${state}: ${JSON.stringify(reply)}`);
        assert.is(stateOf(area), areaTransition(state, command));
      } else {
        assert.not.ok(reply.ok, `expected ${command} to be refused in ${state}`);
        if (!reply.ok) assert.ok(['AREA_STATE', 'AREA_ABSENT'].includes(reply.code), `refusal code ${reply.code}`);
        assert.equal(chip.memory.get(area), before, 'a refused command changes nothing');
      }
    });
  }
}
lifecycle.run();

const owned = suite('chip: admin commands are idempotent and owned');
owned.before(setUp);
owned.after(tearDown);

owned('the same command again gets the same answer and changes nothing', async () => {
  const keys = await areaIn('mainActive', 'own1', 'm-a');
  const lock: ChipCommand = { op: 'lock', area: 'own1', key: toB64(keys.temp.reveal()), mig: 'm-b', step: 'S3' };
  const first = await admin(lock);
  const after = chip.memory.get('own1');
  const again = await admin(lock);
  assert.equal(again, first);
  assert.equal(chip.memory.get('own1'), after);
});

owned('a command of another migration on a held area is refused with AREA_HELD', async () => {
  const keys = await areaIn('locked', 'own2', 'm-c');
  const r = await admin({ op: 'wipe', area: 'own2', mig: 'someone-else', step: 'S3' });
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.code, 'AREA_HELD');
  assert.is(stateOf('own2'), 'locked');
  void keys;
});

owned(
  'a batch of area commands applies all or none: one refused command refuses the batch, naming it, and no area changes; an accepted batch answers each command in order',
  async () => {
    const a = await areaIn('mainActive', 'bat1', 'm-d');
    await areaIn('locked', 'bat2', 'm-e'); // held by m-e-lock: a lock of m-f is refused there
    const c = await areaIn('mainActive', 'bat3', 'm-g');
    const lock = (area: string, keys: Keys): ChipCommand => ({ op: 'lock', area, key: toB64(keys.temp.reveal()), mig: 'm-f', step: 'S3' });
    const before = [chip.memory.get('bat1'), chip.memory.get('bat2'), chip.memory.get('bat3')];
    const refused = await admin({ op: 'batch', cmds: [lock('bat1', a), lock('bat2', a), lock('bat3', c)] } as ChipCommand);
    assert.equal(refused, { ok: false, code: 'AREA_HELD', message: 'command 2 of 3 (lock bat2): area bat2 is held by another migration' });
    assert.equal([chip.memory.get('bat1'), chip.memory.get('bat2'), chip.memory.get('bat3')], before, 'no area changed');
    const done = await admin({ op: 'batch', cmds: [lock('bat1', a), lock('bat3', c)] } as ChipCommand);
    assert.ok(done.ok && done.replies?.length === 2 && done.replies.every((r) => r.kcv && r.prevKcv));
    assert.equal([stateOf('bat1'), stateOf('bat3')], ['locked', 'locked']);
  },
);

owned.run();

const auth = suite('chip: mutual authentication and session frames');
auth.before(setUp);
auth.after(tearDown);

auth("a SAM holding the wrong slot's key fails to authenticate (that is how locking works)", async () => {
  const keys = await areaIn('locked', 'au1', 'm-d');
  // The area is locked: its active key is the temp key. A SAM with the main key can not open an upload session.
  const wrong = await open('upload', 'au1', keys.main, 'm-d-lock');
  assert.equal(wrong, { ok: false, code: 'AUTH_FAILED' });
  // ... and the chip, given a proof made with the wrong key, refuses the SAM.
  const sams = new SamSessions(rng);
  const session = 'wrong-proof';
  const answer = await console_.exchange(session, sams.begin({ session, area: 'au1', mig: 'm-d-lock', purpose: 'upload' }));
  const a = sams.answer(session, answer, () => keys.main); // proof check fails on our side, but force the proof through:
  assert.is(a.kind === 'answered' && a.proofOk, false);
  const forged = encodeJson({ t: 'auth3', proof: toB64(new Uint8Array(32).fill(9)), box: toB64(new Uint8Array(40)) });
  const refused = await console_.exchange(session, forged);
  assert.is(refused.t, 'err');
  if (refused.t === 'err') assert.is(refused.code, 'AUTH_FAILED');
  // The right key opens it.
  const right = await open('upload', 'au1', keys.temp, 'm-d-lock');
  assert.ok(right.ok);
  const r = await run(right, { op: 'read' });
  assert.ok(r.ok && r.data !== undefined);
});

auth('normal use on a locked area is refused with AREA_LOCKED', async () => {
  const keys = await areaIn('locked', 'au2', 'm-e');
  const o = await open('normal', 'au2', keys.main);
  assert.equal(o, { ok: false, code: 'AREA_LOCKED' });
});

async function openList(): Promise<{ session: string; sams: SamSessions }> {
  const o = await open('admin', '*', kChip);
  if (!o.ok) throw new Error('admin session did not open');
  assert.ok((await run(o, { op: 'list' })).ok);
  return o;
}

auth('the last frame again gets the same answer, run once; an earlier frame replayed is refused (FRAME_REPLAY) and ends the session', async () => {
  const o = await openList();
  const earlier = o.sams.command(o.session, { op: 'list' });
  assert.is((await console_.exchange(o.session, earlier)).t, 'resp');
  const frame = o.sams.command(o.session, { op: 'list' });
  const first = await console_.exchange(o.session, frame);
  assert.is(first.t, 'resp');
  // A SAM sends its last frame again when the answer does not come (src/runtime/resends.ts): the chip answers it
  // with the answer it gave, byte for byte, and runs nothing again (its counter would refuse a second run).
  assert.equal(await console_.exchange(o.session, frame), first, 'the same answer to the same last frame');
  const replay = await console_.exchange(o.session, earlier);
  assert.is(replay.t, 'err');
  if (replay.t === 'err') assert.is(replay.code, 'FRAME_REPLAY');
  const after = await console_.exchange(o.session, o.sams.command(o.session, { op: 'list' }));
  assert.is(after.t, 'err', 'the session is over after a rejected frame');
});

auth('a reordered frame is refused (FRAME_REORDER)', async () => {
  const o = await openList();
  const f1 = o.sams.command(o.session, { op: 'list' });
  const f2 = o.sams.command(o.session, { op: 'list' });
  const early = await console_.exchange(o.session, f2);
  assert.is(early.t, 'err');
  if (early.t === 'err') assert.is(early.code, 'FRAME_REORDER');
  void f1;
});

auth('a tampered frame is refused (FRAME_TAMPERED)', async () => {
  const o = await openList();
  const frame = decodeChipFrame(o.sams.command(o.session, { op: 'list' }));
  assert.is(frame.t, 'cmd');
  if (frame.t !== 'cmd') return;
  const box = fromB64(frame.box);
  box[box.length - 3]! ^= 0x01;
  const bad = await console_.exchange(o.session, encodeJson({ t: 'cmd', box: toB64(box) }));
  assert.is(bad.t, 'err');
  if (bad.t === 'err') assert.is(bad.code, 'FRAME_TAMPERED');
});

auth('a session opened for one area can not be used as another (the binding is in the keys)', async () => {
  const keys = await areaIn('locked', 'au3', 'm-f');
  await areaIn('locked', 'au4', 'm-g');
  // Same temp key installed on au4 would still not open a session for au3's binding with au4's name: simulate by asking for au4 with au3's key.
  const o = await open('upload', 'au4', keys.temp, 'm-g-lock');
  assert.equal(o, { ok: false, code: 'AUTH_FAILED' });
});

auth.run();
