/**
 * keyCheckValue (src/crypto/keys.ts) beyond its formula (keys.test.ts): it is
 * counted as one HMAC of the party running it (the bench's crypto figures,
 * src/metrics/counters.ts), and a short key is refused naming what was
 * checked. Written to kill mutants `npm run mutate` found surviving
 * (docs/mutation.md).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keyCheckValue, randomSecret, seededRng, Secret } from '../../src/crypto/index.ts';
import { attributeTo, diff, snapshot } from '../../src/metrics/counters.ts';
import { errorOf } from './helpers.ts';

const rng = seededRng('kcv-tests');

test('kcv: one key check value is charged as exactly one HMAC to the party running it', () => {
  const key = randomSecret(rng);
  const before = snapshot();
  attributeTo('kcv-test-party', () => keyCheckValue(key, 'SRC-1', 'emoney'));
  assert.equal(diff(snapshot(), before).crypto['kcv-test-party'], { hmac: { n: 1, bytes: 0 } });
});

test('kcv: a short key is BAD_KEY, and the message says which key was checked', () => {
  const e = errorOf(() => keyCheckValue(Secret.of(new Uint8Array(16)), 'SRC-1', 'emoney'));
  assert.is(e.code, 'BAD_KEY');
  assert.is(e.message, 'a key checked by value must be 32 bytes');
});

test.run();
