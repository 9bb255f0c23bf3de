/** password.ts: scrypt password records (protocol.md §2, users). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromB64, hashPassword, SCRYPT_DEFAULTS, seededRng, verifyPassword, type PasswordRecord } from '../../src/crypto/index.ts';
import { codeOf } from './helpers.ts';

const rng = seededRng('password-tests');
const FAST = { N: 2 ** 10, r: 8, p: 1 };

test('a record verifies the right password and not a wrong one', () => {
  const rec = hashPassword('correct horse', rng, FAST);
  assert.ok(verifyPassword('correct horse', rec));
  for (const wrong of ['correct horsf', 'correct horse ', 'Correct horse', '']) assert.not.ok(verifyPassword(wrong, rec), wrong);
});

test('a record is JSON, holds a 16-byte salt and a 32-byte hash, and never the password', () => {
  const rec = hashPassword('hunter2-secret', rng, FAST);
  assert.equal(Object.keys(rec).sort(), ['N', 'alg', 'hash', 'p', 'r', 'salt']);
  assert.is(rec.alg, 'scrypt');
  assert.is(fromB64(rec.salt).length, 16);
  assert.is(fromB64(rec.hash).length, 32);
  assert.not.match(JSON.stringify(rec), /hunter2/);
  assert.ok(verifyPassword('hunter2-secret', JSON.parse(JSON.stringify(rec)) as PasswordRecord));
});

test('the salt comes from the Rng: the same seed gives the same record, a fresh salt another hash', () => {
  assert.equal(hashPassword('pw', seededRng(1), FAST), hashPassword('pw', seededRng(1), FAST));
  assert.is.not(hashPassword('pw', rng, FAST).hash, hashPassword('pw', rng, FAST).hash);
});

test('the defaults are N = 2^15, r = 8, p = 1', () => {
  assert.equal({ ...SCRYPT_DEFAULTS }, { N: 2 ** 15, r: 8, p: 1 });
});

test('a forged record asking for a huge cost is refused at once, not computed', () => {
  const rec = hashPassword('pw', rng, FAST);
  const started = process.hrtime.bigint();
  for (const forged of [{ N: 2 ** 30 }, { N: 2 ** 21 }, { r: 1000 }, { p: 1000 }, { N: 2 ** 20, r: 8, p: 16 }]) {
    assert.not.ok(verifyPassword('pw', { ...rec, ...forged }), JSON.stringify(forged));
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(ms < 500, `took ${ms} ms`);
});

test('a malformed record simply does not verify', () => {
  const rec = hashPassword('pw', rng, FAST);
  const bad: unknown[] = [
    null,
    {},
    { ...rec, alg: 'argon2' },
    { ...rec, N: 1000 },
    { ...rec, N: 0 },
    { ...rec, salt: '***' },
    { ...rec, hash: rec.hash.slice(0, 20) },
    { ...rec, hash: undefined },
  ];
  for (const r of bad) assert.not.ok(verifyPassword('pw', r as PasswordRecord), JSON.stringify(r));
});

test('hashPassword refuses parameters above the cost limit with BAD_PARAMS', () => {
  assert.is(
    codeOf(() => hashPassword('pw', rng, { N: 2 ** 21, r: 8, p: 1 })),
    'BAD_PARAMS',
  );
  assert.is(
    codeOf(() => hashPassword('pw', rng, { N: 1000, r: 8, p: 1 })),
    'BAD_PARAMS',
  );
});

test.run();
