/** keys.ts: key diversification (protocol.md §1–2) and the key check value a chip answers after a key change. */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deriveChipKey, deriveMainKey, encodeFields, KEY_BYTES, keyCheckValue, randomSecret, Secret, seededRng, toHex, utf8 } from '../../src/crypto/index.ts';
import { codeOf } from './helpers.ts';

const rng = seededRng('keys-tests');
const master = randomSecret(rng);

test('K_chip is HKDF-SHA256(issuer master, salt "valmove/v1/k-chip", info fields(serial)), 32 bytes', () => {
  const expected = hkdf(sha256, master.reveal(), utf8('valmove/v1/k-chip'), encodeFields('SN-1'), 32);
  assert.is(toHex(deriveChipKey(master, 'SN-1').reveal()), toHex(expected));
  assert.is(deriveChipKey(master, 'SN-1').length, KEY_BYTES);
});

test('K_main is HKDF-SHA256(provider master, salt "valmove/v1/k-main", info fields(serial, area))', () => {
  const expected = hkdf(sha256, master.reveal(), utf8('valmove/v1/k-main'), encodeFields('SN-1', 'emoney'), 32);
  assert.is(toHex(deriveMainKey(master, 'SN-1', 'emoney').reveal()), toHex(expected));
});

test('keys are diversified per chip and per (chip, area), and chip and main keys never coincide', () => {
  assert.not.ok(deriveChipKey(master, 'A').equals(deriveChipKey(master, 'B')));
  assert.not.ok(deriveMainKey(master, 'A', 'x').equals(deriveMainKey(master, 'A', 'y')));
  assert.not.ok(deriveMainKey(master, 'A', 'x').equals(deriveMainKey(master, 'B', 'x')));
  assert.ok(deriveMainKey(master, 'A', 'x').equals(deriveMainKey(master, 'A', 'x')));
  assert.not.ok(deriveMainKey(master, 'ab', 'c').equals(deriveMainKey(master, 'a', 'bc')), 'serial/area split is unambiguous');
  assert.not.ok(deriveChipKey(master, 'A').equals(deriveMainKey(master, 'A', '')), 'different salts separate the two uses');
  assert.not.ok(deriveChipKey(master, 'A').equals(deriveChipKey(randomSecret(rng), 'A')));
});

test('the key check value is the first 8 bytes of HMAC(key, fields("valmove/v1/kcv", serial, area))', () => {
  const k = deriveMainKey(master, 'A', 'x');
  const mac = hmac(sha256, k.reveal(), encodeFields('valmove/v1/kcv', 'A', 'x'));
  assert.is(toHex(keyCheckValue(k, 'A', 'x')), toHex(mac.subarray(0, 8)));
});

test('the key check value tells the temp slot from the main slot, and binds serial and area', () => {
  const main = deriveMainKey(master, 'A', 'x');
  const temp = randomSecret(rng);
  assert.is.not(toHex(keyCheckValue(main, 'A', 'x')), toHex(keyCheckValue(temp, 'A', 'x')));
  assert.is.not(toHex(keyCheckValue(main, 'A', 'x')), toHex(keyCheckValue(main, 'B', 'x')));
  assert.is.not(toHex(keyCheckValue(main, 'A', 'x')), toHex(keyCheckValue(main, 'A', 'y')));
});

test('masters and checked keys must be 32 bytes (BAD_KEY), and the error shows no key bytes', () => {
  const short = Secret.of(new Uint8Array(16).fill(0x5a));
  assert.is(
    codeOf(() => deriveChipKey(short, 'A')),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => deriveMainKey(short, 'A', 'x')),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => keyCheckValue(short, 'A', 'x')),
    'BAD_KEY',
  );
  try {
    deriveChipKey(short, 'A');
  } catch (e) {
    assert.not.match((e as Error).message, /5a5a|WlpaWl/i);
  }
});

test.run();
