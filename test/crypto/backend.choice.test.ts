/**
 * Which backend runs where (src/crypto/backend.choice.ts): the chip noble,
 * every party on a server node, VALMOVE_CRYPTO forcing one; a bad value named
 * in one line. And the node backend's caches: a wiped Secret's KeyObject is
 * dropped, the public-key cache has a bound, calls are counted per backend.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  backendForParty,
  CRYPTO_ENV,
  CryptoChoiceError,
  currentBackend,
  nobleBackend,
  nodeBackend,
  parseBackendName,
  Secret,
  seededRng,
  utf8,
} from '../../src/crypto/index.ts';
import { PUBLIC_KEYS_CACHED } from '../../src/crypto/backend.node.ts';
import { Lru } from '../../src/crypto/lru.ts';
import { attributeTo, diff, snapshot } from '../../src/metrics/counters.ts';

/** Runs fn with VALMOVE_CRYPTO set to value (undefined: unset), then puts the environment back. */
function withEnv<T>(value: string | undefined, fn: () => T): T {
  const prev = process.env[CRYPTO_ENV];
  if (value === undefined) delete process.env[CRYPTO_ENV];
  else process.env[CRYPTO_ENV] = value;
  try {
    return fn();
  } finally {
    if (prev === undefined) delete process.env[CRYPTO_ENV];
    else process.env[CRYPTO_ENV] = prev;
  }
}

const PARTIES = ['server', 'admin-sam', 'migration-sam/emoney', 'normal-sam/emoney', 'terminal/old', 'chip/SRC-1'];

test('by default the chip runs noble and every party on a server node; code that names none gets node', () => {
  withEnv(undefined, () => {
    assert.equal(
      PARTIES.map((p) => backendForParty(p).name),
      ['node', 'node', 'node', 'node', 'node', 'noble'],
    );
    assert.is(currentBackend(), nodeBackend);
  });
});

test('VALMOVE_CRYPTO=node or noble forces that backend on every party; empty is unset', () => {
  for (const name of ['node', 'noble'] as const) {
    withEnv(name, () => {
      for (const p of PARTIES) assert.is(backendForParty(p).name, name, p);
      assert.is(currentBackend().name, name);
    });
  }
  withEnv('', () => assert.is(backendForParty('chip/X').name, 'noble'));
});

test('a VALMOVE_CRYPTO that names no backend: one line saying what was given and what is allowed', () => {
  for (const bad of ['openssl', 'NODE', ' node', 'x'.repeat(500)]) {
    let err: unknown;
    try {
      parseBackendName(bad);
    } catch (e) {
      err = e;
    }
    assert.instance(err, CryptoChoiceError, bad);
    const message = (err as Error).message;
    assert.match(message, /^VALMOVE_CRYPTO must be node or noble \(or unset\); got "/);
    assert.ok(message.length < 120 && !message.includes('\n'), `one short line: ${message}`);
  }
  assert.throws(
    () => withEnv('bogus', () => backendForParty('server')),
    (e: unknown) => e instanceof CryptoChoiceError,
  );
});

test('node backend: a wiped Secret is signed with as wiped (its cached KeyObject is dropped), as noble would', () => {
  const seed = seededRng('choice/wipe').bytes(32);
  const msg = utf8('after the wipe');
  const s = Secret.of(seed);
  assert.equal(nodeBackend.ed25519.sign(s, msg), nobleBackend.ed25519.sign(seed, msg));
  s.wipe();
  const zero = new Uint8Array(32);
  assert.equal(nodeBackend.ed25519.sign(s, msg), nobleBackend.ed25519.sign(zero, msg), 'the wiped key, not the cached one');
  assert.equal(nodeBackend.chacha20poly1305.seal(s, new Uint8Array(12), msg, msg), nobleBackend.chacha20poly1305.seal(zero, new Uint8Array(12), msg, msg));
});

test('node backend: the public-key cache is bounded (1024), least recently used out first', () => {
  assert.is(PUBLIC_KEYS_CACHED, 1024);
  const lru = new Lru<number>(3);
  lru.set('a', 1);
  lru.set('b', 2);
  lru.set('c', 3);
  assert.is(lru.get('a'), 1); // a is now the most recent
  lru.set('d', 4);
  assert.is(lru.size, 3);
  assert.is(lru.get('b'), undefined, 'b, the least recently used, went');
  assert.is(lru.get('a'), 1);
  assert.is(lru.get('d'), 4);
});

test('every backend call is counted by backend and charged to the running party', () => {
  const before = snapshot();
  attributeTo('chip/X', () => nobleBackend.x25519.publicKey(new Uint8Array(32).fill(1)));
  attributeTo('server', () => {
    nodeBackend.chacha20poly1305.seal(new Uint8Array(32), new Uint8Array(12), new Uint8Array(100), new Uint8Array(0));
    nodeBackend.ed25519.publicKey(new Uint8Array(32).fill(2));
  });
  const d = diff(snapshot(), before).backends;
  assert.equal(d['chip/X'], { noble: { n: 1, bytes: 0 } });
  assert.equal(d.server, { node: { n: 2, bytes: 100 } });
});

test.run();
