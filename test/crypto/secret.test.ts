/** secret.ts: a Secret can not leak by serialising, printing or inspecting, and compares in constant time. */
import { inspect } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomSecret, Secret, seededRng, toHex } from '../../src/crypto/index.ts';
import { codeOf, leaks } from './helpers.ts';

const bytes = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);

test('JSON.stringify of a Secret, alone or nested, throws', () => {
  const s = Secret.of(bytes);
  assert.throws(() => JSON.stringify(s), /Secret values cannot be serialised/);
  assert.throws(() => JSON.stringify({ nested: [{ key: s }] }), /Secret values cannot be serialised/);
});

test('util.inspect, console formatting and String() show a redaction, never the bytes', () => {
  const s = Secret.of(bytes);
  assert.is(inspect(s), 'Secret(<redacted>)');
  assert.is(inspect({ s }), '{ s: Secret(<redacted>) }');
  assert.is(String(s), '[Secret]');
  assert.is(`${s}`, '[Secret]');
  for (const text of [inspect(s, { showHidden: true, depth: 9 }), inspect({ s }), String(s)]) assert.not.ok(leaks(text, bytes));
  assert.equal(Object.keys(s), [], 'no enumerable field holds the bytes');
});

test('Secret.of copies: changing the source buffer does not change the Secret', () => {
  const src = new Uint8Array(bytes);
  const s = Secret.of(src);
  src.fill(0);
  assert.is(toHex(s.reveal()), toHex(bytes));
  assert.is(s.length, 32);
  assert.is(
    codeOf(() => Secret.of('not bytes' as unknown as Uint8Array)),
    'BAD_KEY',
  );
});

test('equals compares contents; different lengths are unequal', () => {
  assert.ok(Secret.of(bytes).equals(Secret.of(new Uint8Array(bytes))));
  assert.not.ok(Secret.of(bytes).equals(Secret.of(bytes.subarray(1))));
  const other = new Uint8Array(bytes);
  other[31] = other[31]! ^ 1;
  assert.not.ok(Secret.of(bytes).equals(Secret.of(other)));
});

test('wipe zeroes the held bytes', () => {
  const s = Secret.of(bytes);
  s.wipe();
  assert.equal(s.reveal(), new Uint8Array(32));
});

test('randomSecret draws from the given Rng (a seed replays it) and defaults to 32 bytes', () => {
  assert.is(randomSecret(seededRng(5)).length, 32);
  assert.is(randomSecret(seededRng(5), 16).length, 16);
  assert.ok(randomSecret(seededRng(5)).equals(randomSecret(seededRng(5))));
  assert.not.ok(randomSecret(seededRng(5)).equals(randomSecret(seededRng(6))));
});

test.run();
