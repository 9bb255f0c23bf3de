/**
 * Issue 8, point 4: users. Against the real server, terminals and chips of an
 * embedded world (real crypto, LMDB in a temp folder):
 *
 *  - password guessing: the third wrong password locks the account for
 *    LOCKOUT_BASE_MS, each further one doubles the lock up to LOCKOUT_CAP_MS;
 *    while locked even the right password is refused (LOCKED_OUT); the lock is
 *    in the server's LMDB and survives its restart; the operator's
 *    clearLockout lets the user in at once. The world runs on a clock the test
 *    moves forward (src/clock.ts), so an hour's lock takes no time;
 *  - other people's things: bob can not cancel, take over (migrate in) or
 *    hear about alice's migration, nor migrate her chip or name it as his
 *    destination;
 *  - skipping steps: a connection that has not logged in is refused every
 *    user request (UNAUTHENTICATED) and can not feed a migration's session; a
 *    chip-bound frame without a reserved chip-control channel is refused by
 *    the terminal and never reaches the chip.
 */
import { scrypt } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { LOCKOUT_BASE_MS, LOCKOUT_CAP_MS, LOGIN_FAILURES_FREE } from '../../src/actors/server.actor.ts';
import type { TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import { systemClock, type Clock } from '../../src/clock.ts';
import { fromB64, utf8 } from '../../src/crypto/index.ts';
import type { RemoteError } from '../../src/protocol/errors.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { kindOf } from '../../src/transport/messages.ts';
import { scan } from '../helpers/secrets.ts';
import { buildWorld, valueFor, type World } from '../helpers/world.ts';
import { asServer, recording, refusalOf, secretNeedles, state } from './relay.ts';

/** Real time plus an offset the test moves forward: lockouts pass at once, everything else runs as usual. */
class SkewedClock implements Clock {
  offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  schedule(atMs: number, fn: () => void): () => void {
    return systemClock.schedule(atMs - this.offsetMs, fn);
  }
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as RemoteError).code, message: (e as Error).message };
  }
  throw new Error('expected a refusal, the request succeeded');
}

// ---- password guessing --------------------------------------------------------------------------

const guess = suite('users: password guessing (issue 8, point 4)');
const clock = new SkewedClock();
let g: World;
let guesser: TerminalRuntime;
const guesses: string[] = [];
/** How close to the end of a lock the right password is tried (a login takes a few real ms). */
const EDGE_MS = 250;

guess.before(async () => {
  g = await buildWorld({ items: 1, register: false, system: { clock } });
  guesser = await g.system.addTerminal('guesser');
  g.system.connectToServer(guesser);
});
guess.after(async () => {
  await g.cleanup();
});

const userRecord = () => g.system.server.records.users.get(g.user)!;

guess(
  'users: wrong passwords lock the account after the third, for 1 s doubling with each further failure up to the 1 h cap; the right password is refused while locked (LOCKED_OUT); no guess reaches the log',
  async () => {
    assert.is(LOGIN_FAILURES_FREE, 3);
    const seen: number[] = [];
    const expected: number[] = [];
    for (let n = 1; n <= 16; n++) {
      expected.push(n < LOGIN_FAILURES_FREE ? 0 : Math.min(LOCKOUT_CAP_MS, LOCKOUT_BASE_MS * 2 ** (n - LOGIN_FAILURES_FREE)));
      const wrong = `guess-${n}-${g.password}`;
      guesses.push(wrong);
      const t0 = clock.now();
      assert.equal(await refusal(guesser.login(g.user, wrong)), { code: 'LOGIN_FAILED', message: 'unknown user or wrong password' }, `guess ${n}`);
      const t1 = clock.now();
      const rec = userRecord();
      assert.is(rec.failures, n, `failures counted after guess ${n}`);
      if (rec.lockedUntil === 0) {
        seen.push(0);
        continue;
      }
      // The lock the server set, within the time the attempt took.
      const lock = expected[n - 1]!;
      assert.ok(
        rec.lockedUntil - lock >= t0 && rec.lockedUntil - lock <= t1,
        `guess ${n}: locked until ${rec.lockedUntil - t0} ms after the attempt, expected ${lock}`,
      );
      seen.push(lock);
      // Locked: the right password is refused, up to the last millisecond, and the refusals do not count as failures.
      assert.equal(await refusal(guesser.login(g.user, g.password)), { code: 'LOCKED_OUT', message: `too many failed logins; try again in ${lock / 1000} s` });
      // Moved to just before the lock ends (a margin for the real milliseconds a login takes).
      clock.offsetMs += rec.lockedUntil - clock.now() - EDGE_MS;
      assert.equal(await refusal(guesser.login(g.user, g.password)), { code: 'LOCKED_OUT', message: 'too many failed logins; try again in 1 s' });
      assert.is(userRecord().failures, n, 'a refused attempt while locked is not a failure');
      assert.is(userRecord().lockedUntil, rec.lockedUntil, 'nor does it extend the lock');
      if (n < 16) clock.offsetMs += EDGE_MS + 2;
    }
    assert.equal(seen, expected);
    assert.equal(seen.slice(0, 6), [0, 0, 1_000, 2_000, 4_000, 8_000], 'locks start at the third failure and double');
    assert.equal(seen.slice(-3), [2_048_000, LOCKOUT_CAP_MS, LOCKOUT_CAP_MS], 'and stop at the cap');

    const failed = g.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.party === 'server' && l.msg === 'login failed');
    assert.is(failed.length, 16, 'each failure is logged');
    assert.ok(failed.every((l) => l.user === g.user && l.peer === 'terminal/guesser'));
    const rec = userRecord();
    const proof = scrypt(utf8(g.password), fromB64(rec.salt), { N: rec.N, r: rec.r, p: rec.p, dkLen: 32 });
    const needles = secretNeedles(g, [
      ...guesses.map((x, i) => ({ name: `guess ${i + 1}`, bytes: utf8(x) })),
      { name: 'login proof', bytes: proof },
      { name: 'verifier', bytes: sha256(proof) },
    ]);
    assert.ok(scan([{ where: 'planted', bytes: utf8(`{"p":"${guesses[0]}"}`) }], needles).length > 0, 'the scan finds a planted guess');
    const found = scan(
      g.logLines.map((l, i) => ({ where: `log line ${i}: ${l.slice(0, 120)}`, bytes: utf8(l) })),
      needles,
    );
    assert.equal(found, [], `secrets in the log: ${JSON.stringify(found.slice(0, 3))}`);
  },
);

guess("users: the lockout is in the server's LMDB: after a server restart the right password is still refused (LOCKED_OUT)", async () => {
  // Past the last lock, one more wrong guess: locked for the cap again.
  clock.offsetMs += userRecord().lockedUntil - clock.now() + 2;
  assert.equal(await refusal(guesser.login(g.user, 'one-more-guess')), { code: 'LOGIN_FAILED', message: 'unknown user or wrong password' });
  const before = userRecord();
  assert.is(before.failures, 17);
  assert.ok(before.lockedUntil > clock.now() + LOCKOUT_CAP_MS - 60_000, 'the account is locked at the cap');
  await g.system.restart('server');
  assert.equal(userRecord(), before, 'the restarted server read the same record');
  assert.equal(await refusal(guesser.login(g.user, g.password)), {
    code: 'LOCKED_OUT',
    message: `too many failed logins; try again in ${LOCKOUT_CAP_MS / 1000} s`,
  });
});

guess("users: the operator's clearLockout lets the user in at once, and guessing starts over from the first free failure", async () => {
  assert.equal(await refusal(g.system.server.clearLockout('mallory')), { code: 'NOT_FOUND', message: 'no user mallory' });
  await g.system.server.clearLockout(g.user);
  assert.equal([userRecord().failures, userRecord().lockedUntil], [0, 0]);
  await guesser.login(g.user, g.password);
  // A fresh count: two free failures, then the base lock again (not the cap).
  const other = await g.system.addTerminal('guesser-2');
  g.system.connectToServer(other);
  for (let n = 1; n <= LOGIN_FAILURES_FREE; n++) await refusal(other.login(g.user, `again-${n}`));
  const t = clock.now();
  const rec = userRecord();
  assert.is(rec.failures, LOGIN_FAILURES_FREE);
  assert.ok(rec.lockedUntil > t && rec.lockedUntil <= t + LOCKOUT_BASE_MS, `locked for the base ${LOCKOUT_BASE_MS} ms again, not ${rec.lockedUntil - t}`);
  await g.system.server.clearLockout(g.user);
});

// ---- other people's chips and migrations; skipped steps ----------------------------------------------

const others = suite("users: other people's chips and migrations, skipped steps (issue 8, point 4)");
let w: World;
let bob: TerminalRuntime;
let bobChip: ChipRuntime;
let thief: TerminalRuntime;
let migA = '';
const bobPassword = 'bobs-own-password';
const bobHeard: string[] = [];

others.before(async () => {
  w = await buildWorld({ items: 2, record: true });
  const { system } = w;
  await system.server.createUser('bob', bobPassword);
  bobChip = await system.addChip('BOB-1');
  await system.issue(bobChip, [{ area: w.providers[0]!, provider: w.providers[0]!, value: valueFor('emoney', 9) }]);
  bob = await system.addTerminal('bob');
  system.insertChip(bob, bobChip);
  system.connectToServer(bob);
  await bob.login('bob', bobPassword);
  await bob.register();
  bob.onProgress((p) => bobHeard.push(p.mig));
  // Bob holds alice's new phone's chip (a stolen phone, a shop's reader), logged in as himself.
  thief = await system.addTerminal('thief');
  system.insertChip(thief, w.destination);
  system.connectToServer(thief);
  await thief.login('bob', bobPassword);
  const out = await w.oldPhone.migrateOut({ destination: w.destination.serial });
  assert.is(out.outcome, 'uploaded', out.reason);
  migA = out.mig;
});
others.after(async () => {
  await w.cleanup();
});

const envelopesTo = (party: string): AnyEnvelope[] =>
  recording(w)
    .filter((s) => s.party === party && s.direction === 'in')
    .map((s) => s.env);

others("users: bob can not cancel alice's migration — refused (NO_MIGRATION) exactly as a migration that does not exist, and it stays pending", async () => {
  const before = state(w);
  const phase = JSON.stringify(w.system.server.migrationState(migA));
  assert.equal(await refusal(bob.cancel(migA)), { code: 'NO_MIGRATION', message: `no migration ${migA} of bob` });
  assert.equal(
    await refusal(bob.cancel('m-AAAAAAAA')),
    { code: 'NO_MIGRATION', message: 'no migration m-AAAAAAAA of bob' },
    "the same answer: no oracle for other users' migrations",
  );
  assert.is(w.system.adminSam.decisionOf(migA), 'pending');
  assert.is(JSON.stringify(w.system.server.migrationState(migA)), phase);
  assert.is(state(w), before);
});

others("users: bob can not take alice's migration into his chip (migrate in, named or not: NO_MIGRATION), and hears nothing of it", async () => {
  const before = state(w);
  assert.equal(await refusal(bob.migrateIn({ mig: migA })), { code: 'NO_MIGRATION', message: 'bob has no migration waiting for a destination' });
  assert.equal(await refusal(bob.migrateIn()), { code: 'NO_MIGRATION', message: 'bob has no migration waiting for a destination' });
  assert.is(state(w), before, "bob's chip was not formatted, nothing moved");
  assert.equal(bobHeard, [], 'no progress of any migration reached bob');
  const leaked = envelopesTo('terminal/bob').filter((e) => e.type !== 'error' && (e.mig === migA || JSON.stringify(e.body).includes(migA)));
  assert.equal(
    leaked.map((e) => e.type),
    [],
    "no envelope about alice's migration reached bob's terminal",
  );
});

others("users: bob can not migrate out alice's chip from his login (NOT_OWNER at preflight), nor name it as his destination; nothing is locked", async () => {
  const before = state(w);
  const stolen = await thief.migrateOut();
  assert.is(stolen.outcome, 'refused');
  assert.is(stolen.reason, `NOT_OWNER: chip ${w.destination.serial} is not registered to bob`);
  const named = await bob.migrateOut({ destination: w.destination.serial });
  assert.is(named.outcome, 'refused');
  assert.is(named.reason, `PREFLIGHT_FAILED: destination ${w.destination.serial} is not registered to bob`);
  assert.is(state(w), before, "alice's chip and bob's are as they were; no temp key, no decision, nothing held");
  assert.ok(bobChip.memory.list().every((a) => a.state === 'mainActive'));
});

others(
  "users: a connection that has not logged in is refused every user request (UNAUTHENTICATED) and can not feed her migration's session; one claiming alice's terminal name without its device key is refused at the handshake",
  async () => {
    const before = state(w);
    // A stranger under a name of its own (a new device key, an unbound name): it may log in, and nothing else.
    const link = w.system.rawServerConnection('stranger');
    const replies: AnyEnvelope[] = [];
    link.onMessage((b) => replies.push(decodeEnvelope(b)));
    const base = { v: 1, from: 'terminal/stranger', to: 'server' };
    const send = (id: string, type: string, body: object, extra: object = {}) =>
      link.send(utf8(JSON.stringify({ ...base, ...extra, id: `terminal/stranger#${id}`, type, body })));
    send('1', 'chip.register', {});
    send('2', 'migrate.out', {});
    send('3', 'migrate.in', { mig: migA });
    send('4', 'migrate.cancel', { mig: migA });
    send('5', 'frame', { session: `${migA}:S14:1`, data: 'AAAA' });
    send('6', 'channel.reserved', {}, { corr: 'server#nothing' });
    for (let i = 0; i < 100 && replies.length < 5; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    const answers = Object.fromEntries(replies.map((e) => [e.corr, refusalOf(e)]));
    const unauth = { code: 'UNAUTHENTICATED', message: 'log in first: this connection has no authenticated user' };
    for (const n of [1, 2, 3, 4]) assert.equal(answers[`terminal/stranger#${n}`], unauth);
    // A frame from a connection that is none of the migration's terminals is told what it would be told of a
    // session that does not exist: no oracle.
    assert.equal(answers['terminal/stranger#5'], { code: 'NOT_FOUND', message: `no migration or registration owns session ${migA}:S14:1` });
    // A reply to no request of the server's is dropped (never answered: no error ping-pong), and changes nothing.
    assert.is(answers['terminal/stranger#6'], undefined);
    assert.is(replies.length, 5);
    link.close('done');
    // 'old' is alice's old phone's name, bound to its device key: a connection with another key does not get it.
    const squatter = w.system.rawServerConnection('old');
    const heard: AnyEnvelope[] = [];
    squatter.onMessage((b) => heard.push(decodeEnvelope(b)));
    const closed = new Promise<string>((res) => squatter.onClose(res));
    squatter.send(utf8(JSON.stringify({ v: 1, id: 'terminal/old#1', from: 'terminal/old', to: 'server', type: 'migrate.cancel', body: { mig: migA } })));
    await closed;
    assert.equal((squatter as { refusal?: unknown }).refusal, { code: 'UNTRUSTED_PEER', message: 'terminal/old is bound to another device key' });
    assert.equal(heard, [], 'nothing the squatter sent reached the server');
    assert.is(w.system.adminSam.decisionOf(migA), 'pending');
    assert.is(state(w), before);
  },
);

/*
 * The server's inbox answers a repeated request id to whoever sends it under
 * the same name. A terminal's name is bound to its device key (its first
 * login, or the operator's enrolment), so a stranger can not take alice's
 * phone's name at all; and a terminal's request ids still carry 64 random
 * bits after the counter (runtime.ts, `requestIdsUnguessable`), a second
 * line should a name ever be taken.
 */
others(
  "users: a connection claiming alice's terminal name is refused at the handshake, so it can not even guess a request id the server would answer from its inbox; an id used from another name is refused (BAD_ENVELOPE)",
  async () => {
    const asked = recording(w).filter((x) => x.party === w.oldPhone.id && x.direction === 'out' && x.peer === 'server' && kindOf(x.env.type) === 'request');
    assert.ok(
      asked.some((x) => x.env.type === 'migrate.out'),
      "alice's migrate.out was recorded",
    );
    for (const x of asked)
      assert.match(x.env.id, /^terminal\/old#\d+\.[0-9a-f]{16}$/, `a terminal's request id carries 64 random bits: ${x.env.type} ${x.env.id}`);
    const before = state(w);
    const stranger = w.system.rawServerConnection('old');
    const replies: AnyEnvelope[] = [];
    stranger.onMessage((b) => replies.push(decodeEnvelope(b)));
    const closed = new Promise<string>((res) => stranger.onClose(res));
    // What the stranger can know: alice's terminal name, and that the part before the dot counts up.
    for (let n = 1; n <= 40; n++) {
      stranger.send(utf8(JSON.stringify({ v: 1, id: `${w.oldPhone.id}#${n}`, from: w.oldPhone.id, to: 'server', type: 'migrate.out', body: {} })));
    }
    await closed;
    assert.equal((stranger as { refusal?: unknown }).refusal, { code: 'UNTRUSTED_PEER', message: 'terminal/old is bound to another device key' });
    assert.equal(replies, [], 'no guess reached the server');
    // An id that leaked (a log read by the wrong person) is no use from a connection under another name either.
    const other = w.system.rawServerConnection('mallory');
    const answer: AnyEnvelope[] = [];
    other.onMessage((b) => answer.push(decodeEnvelope(b)));
    const leaked = asked.find((x) => x.env.type === 'migrate.out')!.env;
    other.send(utf8(JSON.stringify({ ...leaked, from: 'terminal/mallory' })));
    for (let i = 0; i < 100 && answer.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
    other.close('done');
    assert.equal(
      answer.map((e) => [e.type, refusalOf(e).code, refusalOf(e).message]),
      [['error', 'BAD_ENVELOPE', `request id ${leaked.id} is not "terminal/mallory#<sequence number>" (optionally ".<16 hex digits>" after it)`]],
    );
    assert.is(state(w), before);
  },
);

others(
  'users: a chip-bound frame or a channel reservation the user did not ask for is refused by the terminal (UNEXPECTED) and never reaches the chip',
  async () => {
    const chipIn = () => envelopesTo(bobChip.id).length;
    const before = state(w);
    const reached = chipIn();
    const seat = asServer(w, bob.id);
    try {
      const frame = seat.send('frame', { session: `${migA}:S14:7`, data: 'AAAA' });
      const f = refusalOf(await seat.answerTo(frame));
      assert.is(f.code, 'UNEXPECTED');
      assert.match(f.message, /^SERVER_FRAME is not expected by terminal in state .*"loggedIn"/);
      const reserve = seat.send('channel.reserve', { purpose: 'source', mig: migA }, { mig: migA, step: 'S1' });
      const r = refusalOf(await seat.answerTo(reserve));
      assert.is(r.code, 'UNEXPECTED');
      assert.match(r.message, /^CHANNEL_RESERVE_REQUESTED is not expected by terminal in state .*"loggedIn"/);
      await new Promise((res) => setTimeout(res, 50));
      assert.is(chipIn(), reached, "nothing was relayed to bob's chip");
      assert.is(state(w), before);
    } finally {
      await seat.giveBack();
    }
  },
);

others("after every attempt, alice's migration completes into her own destination", async () => {
  const done = await w.newPhone.migrateIn({ mig: migA });
  assert.is(done.outcome, 'completed', done.reason);
  assert.is(w.system.adminSam.decisionOf(migA), 'committed');
  assert.ok(w.destination.memory.list().every((a) => a.state === 'mainActive'));
  assert.ok(
    bobChip.memory.list().every((a) => a.state === 'mainActive'),
    "bob's chip is untouched",
  );
});

guess.run();
others.run();
