/**
 * What fuzzing the parties found (issue 8, point 6), one test per finding, in
 * one small world. Each of the first five inputs stopped a party or killed
 * the whole process before its fix. A sixth finding (an answer settling a
 * request sent on another link) is kept in test/runtime/intake.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RemoteError } from '../../src/protocol/errors.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { buildWorld, settle, type World } from '../helpers/world.ts';
import { watchProcess } from './fuzz.ts';
import { memorySeat, terminalSeat, type Seat } from './seats.ts';

let w: World;
let watch: ReturnType<typeof watchProcess>;

test.before(async () => {
  w = await buildWorld({ items: 1 });
  watch = watchProcess();
});

test.after(async () => {
  watch.stop();
  await w.cleanup();
});

test.after.each(() => {
  assert.equal(watch.problems, [], 'nothing escaped to the process');
  for (const p of w.system.parties()) assert.not.ok(p.isStopped, `${p.id} keeps serving`);
});

/** Sends one envelope through a seat; what the party answered. */
async function ask(seat: Seat, env: object): Promise<AnyEnvelope[]> {
  seat.got.length = 0;
  seat.send(new TextEncoder().encode(JSON.stringify({ v: 1, from: seat.self, to: seat.party.id, ...env })));
  await settle(w);
  return seat.got.map((r) => r.env!);
}

const answers = (envs: AnyEnvelope[]) => envs.map((e) => (e.type === 'error' ? `${e.body.code}: ${e.body.message}` : e.type));

test('a login proof of "A" (base64url no decoder takes) is refused BAD_BODY at the server\'s door; it stopped the server', async () => {
  const seat = terminalSeat(w, 'found-1');
  const got = await ask(seat, { id: 'terminal/found-1#1', type: 'login.proof', body: { user: w.user, proof: 'A' } });
  assert.equal(answers(got), ['BAD_BODY: login.proof body is invalid: body.proof: canonical base64url without padding']);
  const after = await ask(seat, { id: 'terminal/found-1#2', type: 'login.begin', body: { user: w.user } });
  assert.equal(answers(after), ['login.challenge'], 'the server still answers');
  seat.close();
});

test('a chip challenge whose r is "A" gets an err frame (FRAME_REJECTED); it stopped the chip', async () => {
  const seat = memorySeat(w.source, 'terminal/found-2', 'terminal/found-2');
  const frame = Buffer.from(JSON.stringify({ t: 'auth1', area: w.providers[0], mig: 'm', purpose: 'normal', r: 'A' })).toString('base64url');
  const got = await ask(seat, { id: 'terminal/found-2#1', type: 'frame', body: { session: 's:normal:1', data: frame } });
  const inner = got
    .filter((e) => e.type === 'frame')
    .map((e) => JSON.parse(Buffer.from((e.body as { data: string }).data, 'base64url').toString()) as { t: string; code: string; message: string });
  assert.equal(
    inner.map((f) => `${f.t} ${f.code}: ${f.message}`),
    ['err FRAME_REJECTED: session frame is malformed at r: canonical base64url without padding'],
  );
  seat.close();
});

test('the admin SAM refuses, before any change, a chip frame of "A" in an open session (BAD_BODY), a lock naming an unknown migration SAM (NOT_TRUSTED) and a lock reusing a session (UNEXPECTED); each stopped it', async () => {
  const admin = w.system.adminSam;
  const seat = memorySeat(admin, 'server', 'server');
  await ask(seat, { id: 'server#900000000000001', type: 'admin.identify', body: { session: 'found:S1:1', purpose: 'register' } });
  const records = () =>
    JSON.stringify([[...admin.records.decisions.getRange()], [...admin.records.tempKeys.getRange()].map((e) => e.key), Object.keys(admin.states())]);
  const before = records();
  const frame = await ask(seat, { id: 'server#900000000000002', type: 'frame', body: { session: 'found:S1:1', data: 'A' } });
  assert.equal(answers(frame), ['BAD_BODY: frame body is invalid: body.data: canonical base64url without padding']);
  const item = { item: 0, area: w.providers[0], provider: w.providers[0], recipient: 'migration-sam/nobody' };
  const lock = { type: 'admin.lock', body: { session: 'found:S3:1', serial: w.source.serial, items: [item], expiresAt: Date.now() + 60_000 } };
  assert.equal(answers(await ask(seat, { ...lock, id: 'server#900000000000003', mig: 'm-found-1' })), [
    'NOT_TRUSTED: migration-sam/nobody is not a migration SAM this admin SAM grants keys to',
  ]);
  const known = { ...item, recipient: `migration-sam/${w.providers[0]}` };
  const reused = { ...lock, id: 'server#900000000000004', mig: 'm-found-2', body: { ...lock.body, session: 'found:S1:1', items: [known] } };
  assert.equal(answers(await ask(seat, reused)), ['UNEXPECTED: session found:S1:1 was already used']);
  assert.is(records(), before, 'no decision record, temp key or actor was made');
  w.system.relink('admin-sam', 'server');
});

test('an extra "__proto__" key in a body is refused like any other extra key (it was dropped without a word)', () => {
  const bytes = new TextEncoder().encode('{"v":1,"id":"a#1","from":"a","to":"b","type":"chip.select","body":{"__proto__":"x"}}');
  assert.throws(
    () => decodeEnvelope(bytes),
    (e: Error) => /^chip\.select body is invalid: body: Unrecognized key: "__proto__"/.test(e.message),
  );
});

test('a terminal asked for a scrypt cost no user record can have (N = 3; N·r·p past the cap) fails the login (LOGIN_FAILED) and keeps running; it killed the process', async () => {
  for (const [i, cost] of [
    { N: 3, r: 1, p: 1 },
    { N: 2 ** 20, r: 32, p: 16 },
  ].entries()) {
    const phone = await w.system.addTerminal(`found-${i}`);
    const seat = memorySeat(phone, 'server', 'server');
    const login = phone.login(w.user, w.password).then(
      () => 'logged in',
      (e: RemoteError) => `${e.code}: ${e.message}`,
    );
    await settle(w);
    const begin = seat.got.map((r) => r.env!).find((e) => e.type === 'login.begin')!;
    await ask(seat, { id: `server#found-c${i}`, corr: begin.id, type: 'login.challenge', body: { user: w.user, salt: 'AAAAAAAAAAAAAAAAAAAAAA', ...cost } });
    assert.match(await login, /^LOGIN_FAILED: the server asked for scrypt parameters this terminal refuses/);
    assert.match(JSON.stringify(phone.state()), /loggedOut/, 'logged out, ready to try again');
    assert.equal(
      seat.got.map((r) => r.env!.type),
      [],
      'and no proof was sent',
    );
    seat.close();
  }
});

test.run();
