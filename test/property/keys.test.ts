/**
 * Property tests for key diversification (src/crypto/keys.ts, protocol.md
 * §1–2): K_chip = HKDF(issuer master, serial) and K_main = HKDF(provider
 * master, serial, area) are deterministic, distinct for distinct inputs
 * (also where a naive concatenation would collide), separated from each other
 * by domain, and refuse a master of the wrong length; the key check value
 * follows the key it checks.
 *
 * Names here are well-formed Unicode: UTF-8 turns every lone surrogate into
 * U+FFFD, so "\uD800" and "\uDBFF" diversify alike. Serials and areas reach
 * the KDF only through the wire schemas, which admit ASCII names only.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CryptoError, deriveChipKey, deriveMainKey, KCV_BYTES, KEY_BYTES, keyCheckValue, Secret, toHex } from '../../src/crypto/index.ts';

// uvu prints an error's message, not its cause: put the failed assertion into fast-check's report.
fc.configureGlobal({ includeErrorInReport: true });

const masterArb = fc.uint8Array({ minLength: KEY_BYTES, maxLength: KEY_BYTES }).map((b) => Secret.of(b));
const nameArb = fc.string({ unit: 'binary', maxLength: 40 });
const hex = (s: Secret) => toHex(s.reveal());

test('K_chip and K_main: the same inputs give the same 32-byte key, every time', () => {
  fc.assert(
    fc.property(masterArb, nameArb, nameArb, (m, serial, area) => {
      const chip = deriveChipKey(m, serial);
      const main = deriveMainKey(m, serial, area);
      assert.is(chip.length, KEY_BYTES);
      assert.is(main.length, KEY_BYTES);
      // A copy of the master (a restarted SAM reading its key file) derives the same keys.
      const again = Secret.of(new Uint8Array(m.reveal()));
      assert.ok(deriveChipKey(again, serial).equals(chip));
      assert.ok(deriveMainKey(again, serial, area).equals(main));
    }),
    { numRuns: 500 },
  );
});

test('K_chip: distinct serials or distinct masters give distinct keys', () => {
  fc.assert(
    fc.property(masterArb, masterArb, nameArb, nameArb, (m1, m2, s1, s2) => {
      fc.pre(s1 !== s2 || !m1.equals(m2));
      assert.is.not(hex(deriveChipKey(m1, s1)), hex(deriveChipKey(m2, s2)));
    }),
    { numRuns: 500 },
  );
});

test('K_main: distinct (serial, area) pairs give distinct keys, also when serial + area spell the same string', () => {
  fc.assert(
    fc.property(masterArb, nameArb, fc.nat(), fc.nat(), (m, joined, i, j) => {
      // Two ways to cut one string into (serial, area): a plain concatenation would give them one key.
      const cut = (k: number) => [joined.slice(0, k % (joined.length + 1)), joined.slice(k % (joined.length + 1))] as const;
      const [s1, a1] = cut(i);
      const [s2, a2] = cut(j);
      const k1 = hex(deriveMainKey(m, s1, a1));
      const k2 = hex(deriveMainKey(m, s2, a2));
      if (s1 === s2) assert.is(k1, k2);
      else assert.is.not(k1, k2, `("${s1}", "${a1}") and ("${s2}", "${a2}") share a key`);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(masterArb, masterArb, nameArb, nameArb, nameArb, nameArb, (m1, m2, s1, s2, a1, a2) => {
      fc.pre(s1 !== s2 || a1 !== a2 || !m1.equals(m2));
      assert.is.not(hex(deriveMainKey(m1, s1, a1)), hex(deriveMainKey(m2, s2, a2)));
    }),
    { numRuns: 500 },
  );
});

test('K_chip and K_main are separated by domain: one master used for both never yields the same key', () => {
  fc.assert(
    fc.property(masterArb, nameArb, nameArb, nameArb, (m, s1, s2, area) => {
      assert.is.not(hex(deriveChipKey(m, s1)), hex(deriveMainKey(m, s2, area)));
    }),
    { numRuns: 500 },
  );
});

test('a master of any length but 32 bytes is refused with BAD_KEY, never stretched or padded', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 80 }).filter((b) => b.length !== KEY_BYTES),
      nameArb,
      (bytes, serial) => {
        const m = Secret.of(bytes);
        for (const fn of [() => deriveChipKey(m, serial), () => deriveMainKey(m, serial, 'area'), () => keyCheckValue(m, serial, 'area')]) {
          assert.throws(fn, (e: unknown) => e instanceof CryptoError && e.code === 'BAD_KEY');
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('key check value: 8 bytes, the same for the same (key, serial, area), different when any of them differs', () => {
  fc.assert(
    fc.property(masterArb, masterArb, nameArb, nameArb, nameArb, nameArb, (k1, k2, s1, s2, a1, a2) => {
      const v = toHex(keyCheckValue(k1, s1, a1));
      assert.is(v.length, 2 * KCV_BYTES);
      assert.is(toHex(keyCheckValue(k1, s1, a1)), v);
      // 64 bits: a collision among these runs would be a bug, not bad luck.
      if (!k1.equals(k2) || s1 !== s2 || a1 !== a2) assert.is.not(toHex(keyCheckValue(k2, s2, a2)), v);
    }),
    { numRuns: 500 },
  );
});

test.run();
