/** bytes.ts: encodings are strict and the MAC/signature input encoding is unambiguous. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { concatBytes, encodeFields, equalBytes, fromB64, fromHex, fromUtf8, readU64be, toB64, toHex, u64be, utf8 } from '../../src/crypto/index.ts';
import { codeOf } from './helpers.ts';

test('encodeFields lays out type byte, u32be length and content for each field', () => {
  assert.is(toHex(encodeFields('a', Uint8Array.of(0xff), 1)), '00' + '00000001' + '61' + '01' + '00000001' + 'ff' + '02' + '00000008' + '0000000000000001');
  assert.is(toHex(encodeFields()), '');
  assert.is(toHex(encodeFields('')), '0000000000');
});

test('encodeFields is unambiguous: split points, types and empty fields all change the bytes', () => {
  const distinct = [
    encodeFields('ab', 'c'),
    encodeFields('a', 'bc'),
    encodeFields('abc'),
    encodeFields('abc', ''),
    encodeFields('', 'abc'),
    encodeFields(utf8('abc')),
    encodeFields('1'),
    encodeFields(1),
    encodeFields(u64be(1)),
  ].map(toHex);
  assert.is(new Set(distinct).size, distinct.length);
  // the naive concatenation collides, which is what the length prefix prevents
  assert.is(toHex(concatBytes(utf8('ab'), utf8('c'))), toHex(concatBytes(utf8('a'), utf8('bc'))));
});

test('encodeFields refuses numbers that are not safe non-negative integers', () => {
  for (const n of [-1, 1.5, Number.NaN, Infinity, 2 ** 53])
    assert.is(
      codeOf(() => encodeFields(n)),
      'BAD_ENCODING',
      String(n),
    );
  assert.is(
    codeOf(() => encodeFields({} as unknown as string)),
    'BAD_ENCODING',
  );
});

test('base64url round trips every length, without padding', () => {
  for (let n = 0; n <= 12; n++) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 97 + 251) & 0xff);
    const s = toB64(b);
    assert.not.match(s, /[=+/]/);
    assert.equal(fromB64(s), b);
  }
  assert.is(toB64(Uint8Array.of(0xfb, 0xff)), '-_8');
});

test('base64url decoding is strict: padding, the standard alphabet, whitespace, bad lengths and stray bits are refused', () => {
  for (const bad of ['ab+c', 'ab/c', 'abc=', 'YQ==', 'a', 'abcde', 'ab c', 'ab\nc', 'YR', 'AB']) {
    assert.is(
      codeOf(() => fromB64(bad)),
      'BAD_ENCODING',
      JSON.stringify(bad),
    );
  }
  // 'YQ' is the only spelling of one byte 0x61: 'YR' carries non-zero unused bits
  assert.equal(fromB64('YQ'), utf8('a'));
  assert.is(
    codeOf(() => fromB64(undefined as unknown as string)),
    'BAD_ENCODING',
  );
});

test('hex round trips and refuses odd lengths and non-hex characters', () => {
  assert.is(toHex(Uint8Array.of(0, 1, 0xab, 0xff)), '0001abff');
  assert.equal(fromHex('0001ABff'), Uint8Array.of(0, 1, 0xab, 0xff));
  for (const bad of ['0', 'zz', '0x00', ' 00'])
    assert.is(
      codeOf(() => fromHex(bad)),
      'BAD_ENCODING',
      bad,
    );
});

test('utf8 round trips and invalid UTF-8 is BAD_ENCODING', () => {
  assert.is(fromUtf8(utf8('価値 move ✓')), '価値 move ✓');
  assert.is(
    codeOf(() => fromUtf8(Uint8Array.of(0xc3, 0x28))),
    'BAD_ENCODING',
  );
});

test('equalBytes: equal, different, and different lengths (false, not an error)', () => {
  assert.ok(equalBytes(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3)));
  assert.not.ok(equalBytes(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4)));
  assert.not.ok(equalBytes(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2)));
  assert.ok(equalBytes(new Uint8Array(0), new Uint8Array(0)));
});

test('u64be and readU64be round trip up to 2^64 - 1 and refuse what does not fit', () => {
  assert.is(toHex(u64be(0x0102030405)), '0000000102030405');
  for (const n of [0n, 1n, 2n ** 53n - 1n, 2n ** 64n - 1n]) assert.is(readU64be(u64be(n)), n);
  assert.is(readU64be(concatBytes(Uint8Array.of(9), u64be(7)), 1), 7n);
  for (const n of [-1, 0.5, 2 ** 64, -1n, 2n ** 64n])
    assert.is(
      codeOf(() => u64be(n)),
      'BAD_ENCODING',
      String(n),
    );
  assert.is(
    codeOf(() => readU64be(new Uint8Array(7))),
    'BAD_ENCODING',
  );
  assert.is(
    codeOf(() => readU64be(new Uint8Array(8), 1)),
    'BAD_ENCODING',
  );
});

test.run();
