/**
 * Issue 19: one crypto interface, two backends (src/crypto/backend.ts). Both
 * pass the published vectors (RFC 7748, RFC 8032, RFC 8439); each opens,
 * verifies and agrees with what the other sealed, signed and derived over 200
 * seeded random cases per primitive; and on hostile input (low-order points,
 * small-order and non-canonical keys, S >= L, signatures with a small-order
 * component, tampered boxes, wrong AAD, wrong lengths) both give the same
 * answer or throw the same error.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  concatBytes,
  fromHex,
  nobleBackend,
  nodeBackend,
  Secret,
  seededRng,
  toHex,
  utf8,
  type Bytes,
  type CryptoBackend,
  type KeyInput,
} from '../../src/crypto/index.ts';

const BOTH: CryptoBackend[] = [nodeBackend, nobleBackend];
const CASES = 200;
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const Point = ed25519.Point;

/** What a call gives: its bytes or boolean, or the error it throws (type and message). */
function outcome(fn: () => unknown): string {
  try {
    const v = fn();
    return v instanceof Uint8Array ? `bytes ${v.constructor.name} ${toHex(v)}` : `value ${String(v)}`;
  } catch (e) {
    return `throws ${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
}

/** Both backends give the same outcome; returns it. */
function same(what: string, call: (b: CryptoBackend) => unknown): string {
  const [a, b] = BOTH.map((x) => outcome(() => call(x)));
  assert.is(a, b, `${what}: node and noble differ`);
  return a!;
}

const le32 = (n: bigint): Bytes => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
const fromLe = (b: Bytes): bigint => BigInt(`0x${toHex(Uint8Array.from(b).reverse()) || '0'}`);
const mod = (a: bigint, m: bigint): bigint => ((a % m) + m) % m;

// ---- published vectors ----------------------------------------------------------

test('X25519, RFC 7748 §5.2 and §6.1, through both backends', () => {
  for (const b of BOTH) {
    const scalarMult = [
      [
        'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
        'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
        'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
      ],
      // u has its top bit set: it is masked (RFC 7748 §5).
      [
        '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
        'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
        '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
      ],
    ];
    for (const [k, u, out] of scalarMult) assert.is(toHex(b.x25519.shared(fromHex(k!), fromHex(u!))), out, `${b.name}: §5.2`);
    const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    assert.is(toHex(b.x25519.publicKey(alice)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', b.name);
    assert.is(toHex(b.x25519.publicKey(Secret.of(bob))), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', b.name);
    const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    assert.is(toHex(b.x25519.shared(Secret.of(alice), b.x25519.publicKey(bob))), k, `${b.name}: §6.1 Alice`);
    assert.is(toHex(b.x25519.shared(bob, b.x25519.publicKey(alice))), k, `${b.name}: §6.1 Bob`);
  }
});

test('Ed25519, RFC 8032 §7.1 tests 1-3, through both backends', () => {
  const vectors = [
    [
      '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      '',
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    ],
    [
      '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
      '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
      '72',
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    ],
    [
      'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
      'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
      'af82',
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
    ],
  ];
  for (const b of BOTH) {
    for (const [sk, pk, msg, sig] of vectors) {
      for (const key of [fromHex(sk!), Secret.of(fromHex(sk!))] as KeyInput[]) {
        assert.is(toHex(b.ed25519.publicKey(key)), pk, b.name);
        assert.is(toHex(b.ed25519.sign(key, fromHex(msg!))), sig, b.name);
      }
      assert.ok(b.ed25519.verify(fromHex(sig!), fromHex(msg!), fromHex(pk!)), `${b.name} verifies`);
      assert.not.ok(b.ed25519.verify(fromHex(sig!), utf8('another message'), fromHex(pk!)), `${b.name} refuses another message`);
    }
  }
});

test('ChaCha20-Poly1305, RFC 8439 §2.8.2, through both backends', () => {
  const key = fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = fromHex('070000004041424344454647');
  const aad = fromHex('50515253c0c1c2c3c4c5c6c7');
  const pt = utf8("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const expected =
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36' +
    '92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116' +
    '1ae10b594f09e26a7e902ecbd0600691';
  for (const b of BOTH) {
    for (const k of [key, Secret.of(key)] as KeyInput[]) {
      const sealed = b.chacha20poly1305.seal(k, nonce, pt, aad);
      assert.is(toHex(sealed), expected, b.name);
      assert.equal(b.chacha20poly1305.open(k, nonce, sealed, aad), pt, b.name);
    }
  }
});

// ---- each opens what the other sealed ----------------------------------------------

test(`cross-check, X25519: ${CASES} seeded key pairs; public keys and shared secrets agree across backends`, () => {
  const rng = seededRng('backend/x25519');
  for (let i = 0; i < CASES; i++) {
    const a = rng.bytes(32);
    const b = rng.bytes(32);
    const aPub = nodeBackend.x25519.publicKey(a);
    const bPub = nobleBackend.x25519.publicKey(Secret.of(b));
    assert.equal(aPub, nobleBackend.x25519.publicKey(a), `case ${i}: public keys`);
    assert.equal(bPub, nodeBackend.x25519.publicKey(b), `case ${i}: public keys`);
    const viaNode = nodeBackend.x25519.shared(i % 2 ? Secret.of(a) : a, bPub);
    const viaNoble = nobleBackend.x25519.shared(b, aPub);
    assert.equal(viaNode, viaNoble, `case ${i}: node's side and noble's side derive the same secret`);
    assert.equal(nobleBackend.x25519.shared(a, bPub), nodeBackend.x25519.shared(b, aPub), `case ${i}: and the other way round`);
  }
});

test(`cross-check, Ed25519: ${CASES} seeded keys and messages; each verifies the other's signature, both refuse a changed one`, () => {
  const rng = seededRng('backend/ed25519');
  for (let i = 0; i < CASES; i++) {
    const seed = rng.bytes(32);
    const msg = rng.bytes(rng.nextU32() % 300);
    const pub = nodeBackend.ed25519.publicKey(Secret.of(seed));
    assert.equal(pub, nobleBackend.ed25519.publicKey(seed), `case ${i}: public keys`);
    const sigNode = nodeBackend.ed25519.sign(i % 2 ? Secret.of(seed) : seed, msg);
    const sigNoble = nobleBackend.ed25519.sign(seed, msg);
    assert.equal(sigNode, sigNoble, `case ${i}: deterministic signatures are the same bytes`);
    assert.ok(nobleBackend.ed25519.verify(sigNode, msg, pub), `case ${i}: noble verifies node's`);
    assert.ok(nodeBackend.ed25519.verify(sigNoble, msg, pub), `case ${i}: node verifies noble's`);
    const bit = rng.nextU32() % 512;
    const bad = Uint8Array.from(sigNode);
    bad[bit >> 3]! ^= 1 << (bit & 7);
    assert.is(
      same(`case ${i}: a flipped signature bit`, (b) => b.ed25519.verify(bad, msg, pub)),
      'value false',
    );
    const other = concatBytes(msg, Uint8Array.of(i & 0xff));
    assert.is(
      same(`case ${i}: another message`, (b) => b.ed25519.verify(sigNode, other, pub)),
      'value false',
    );
  }
});

test(`cross-check, ChaCha20-Poly1305: ${CASES} seeded boxes; each opens the other's, both refuse a changed tag, body, AAD or nonce alike`, () => {
  const rng = seededRng('backend/aead');
  for (let i = 0; i < CASES; i++) {
    const key = rng.bytes(32);
    const nonce = rng.bytes(12);
    const aad = rng.bytes(rng.nextU32() % 64);
    const pt = rng.bytes(i % 10 === 0 ? 0 : rng.nextU32() % 1100);
    const k: KeyInput = i % 2 ? Secret.of(key) : key;
    const byNode = nodeBackend.chacha20poly1305.seal(k, nonce, pt, aad);
    const byNoble = nobleBackend.chacha20poly1305.seal(key, nonce, pt, aad);
    assert.equal(byNode, byNoble, `case ${i}: the same box`);
    assert.equal(nobleBackend.chacha20poly1305.open(key, nonce, byNode, aad), pt, `case ${i}: noble opens node's`);
    assert.equal(nodeBackend.chacha20poly1305.open(k, nonce, byNoble, aad), pt, `case ${i}: node opens noble's`);
    const at = rng.nextU32() % byNode.length;
    const tampered = Uint8Array.from(byNode);
    tampered[at]! ^= 1 << (rng.nextU32() % 8);
    const otherAad = concatBytes(aad, Uint8Array.of(1));
    const otherNonce = Uint8Array.from(nonce);
    otherNonce[0]! ^= 1;
    for (const [what, open] of [
      ['a changed byte', (b: CryptoBackend) => b.chacha20poly1305.open(key, nonce, tampered, aad)],
      ['another AAD', (b: CryptoBackend) => b.chacha20poly1305.open(key, nonce, byNode, otherAad)],
      ['another nonce', (b: CryptoBackend) => b.chacha20poly1305.open(key, otherNonce, byNode, aad)],
    ] as const) {
      assert.is(same(`case ${i}: ${what}`, open), 'throws Error: invalid tag');
    }
  }
});

// ---- hostile input: the same answer or the same error ---------------------------------

/** Every X25519 u that noble refuses as low order, canonical and not, with and without the (ignored) top bit. */
function lowOrderUs(): Bytes[] {
  const canonical = [
    0n,
    1n,
    P - 1n,
    325606250916557431795983626356110631294008115727848805560023387167927233504n,
    39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  ];
  const all = [...canonical, P, P + 1n];
  return all.flatMap((u) => [le32(u), le32(u | (1n << 255n))]);
}

test('X25519 edges: low-order and non-canonical points, wrong lengths: the same result or the same error', () => {
  const rng = seededRng('backend/x25519-edges');
  for (let i = 0; i < 8; i++) {
    const secret = rng.bytes(32);
    for (const u of lowOrderUs()) {
      const got = same(`low-order u ${toHex(u)}`, (b) => b.x25519.shared(i % 2 ? Secret.of(secret) : secret, u));
      assert.match(got, /^throws Error: /, `u ${toHex(u)} is refused`);
    }
    // Non-canonical encodings of ordinary points (u + p, the top bit set) give what the canonical one gives.
    const nine = same('u = 9', (b) => b.x25519.shared(secret, le32(9n)));
    assert.is(
      same('u = 9 + p', (b) => b.x25519.shared(secret, le32(9n + P))),
      nine,
    );
    assert.is(
      same('u = 9, top bit set', (b) => b.x25519.shared(secret, le32(9n | (1n << 255n)))),
      nine,
    );
  }
  const s = rng.bytes(32);
  for (const [what, call] of [
    ['a 31-byte peer key', (b: CryptoBackend) => b.x25519.shared(s, new Uint8Array(31))],
    ['a 33-byte peer key', (b: CryptoBackend) => b.x25519.shared(s, new Uint8Array(33))],
    ['a 31-byte secret', (b: CryptoBackend) => b.x25519.shared(new Uint8Array(31), le32(9n))],
    ['a 31-byte secret, public key', (b: CryptoBackend) => b.x25519.publicKey(new Uint8Array(31))],
    ['a string peer key', (b: CryptoBackend) => b.x25519.shared(s, 'x'.repeat(32) as unknown as Bytes)],
  ] as const) {
    assert.match(same(what, call), /^throws /, what);
  }
});

/** The 8 small-order points of edwards25519 (the torsion subgroup), from any point's [L] multiple. */
function smallOrderPoints(): InstanceType<typeof Point>[] {
  const rng = seededRng('backend/torsion');
  for (;;) {
    let p: InstanceType<typeof Point>;
    try {
      p = Point.fromBytes(rng.bytes(32), false);
    } catch {
      continue;
    }
    const t = p.multiply(L - 1n).add(p); // [L]P: P's torsion component
    const all = [Point.ZERO];
    for (let q = t; !q.equals(Point.ZERO); q = q.add(t)) all.push(q);
    if (all.length === 8) return all;
  }
}

/** A signature by secret scalar `a` under the public key A (A may carry a torsion component), R = [r]B + rTorsion. */
function forge(a: bigint, A: Bytes, msg: Bytes, r: bigint, rTorsion = Point.ZERO): Bytes {
  const R = Point.BASE.multiply(r).add(rTorsion).toBytes();
  const k = mod(fromLe(sha512(concatBytes(R, A, msg))), L);
  return concatBytes(R, le32(mod(r + k * a, L)));
}

test('Ed25519 edges: small-order keys, even with a signature OpenSSL alone would take, are refused by both', () => {
  const rng = seededRng('backend/ed-small');
  for (const T of smallOrderPoints()) {
    const A = T.toBytes();
    for (let i = 0; i < 4; i++) {
      const msg = rng.bytes(40);
      const s = mod(fromLe(rng.bytes(32)), L);
      // R = [S]B - [k]T: the cofactorless equation [S]B = R + [k]A holds, for any message, under a key no one holds.
      let sig: Bytes = new Uint8Array(64);
      for (let tries = 0; tries < 64; tries++) {
        const R = Point.BASE.multiply(s)
          .add(T.multiply(BigInt(tries + 1)).negate())
          .toBytes();
        const k = mod(fromLe(sha512(concatBytes(R, A, msg))), L);
        if (T.multiplyUnsafe(k).equals(T.multiply(BigInt(tries + 1)))) {
          sig = concatBytes(R, le32(s));
          break;
        }
      }
      assert.is(
        same(`small-order A ${toHex(A)}`, (b) => b.ed25519.verify(sig, msg, A)),
        'value false',
      );
    }
  }
});

test('Ed25519 edges: a key or R with a small-order component (cofactored noble takes what OpenSSL refuses): the same answer', () => {
  const rng = seededRng('backend/ed-mixed');
  const torsion = smallOrderPoints().slice(1);
  let accepted = 0;
  for (let i = 0; i < 24; i++) {
    const a = mod(fromLe(rng.bytes(32)), L - 1n) + 1n;
    const T = torsion[i % torsion.length]!;
    const msg = rng.bytes(50);
    const r = mod(fromLe(rng.bytes(32)), L - 1n) + 1n;
    const mixedA = Point.BASE.multiply(a).add(T).toBytes();
    const pureA = Point.BASE.multiply(a).toBytes();
    const cases: Array<[string, Bytes, Bytes]> = [
      ['A with torsion', forge(a, mixedA, msg, r), mixedA],
      ['R with torsion', forge(a, pureA, msg, r, T), pureA],
    ];
    for (const [what, sig, A] of cases) {
      if (same(`${what} (case ${i})`, (b) => b.ed25519.verify(sig, msg, A)) === 'value true') accepted++;
    }
  }
  assert.ok(accepted > 0, 'some of these verify (cofactored), so the agreement is not only on refusals');
});

test('Ed25519 edges: S >= L, non-canonical encodings, wrong lengths: both say not valid, neither throws', () => {
  const rng = seededRng('backend/ed-edges');
  const seed = rng.bytes(32);
  const pub = nobleBackend.ed25519.publicKey(seed);
  const msg = rng.bytes(64);
  const sig = nobleBackend.ed25519.sign(seed, msg);
  const S = fromLe(sig.subarray(32));
  const withS = (s: bigint): Bytes => concatBytes(sig.subarray(0, 32), le32(s));
  for (const s of [S + L, L, 2n ** 256n - 1n])
    assert.is(
      same(`S = ${s}`, (b) => b.ed25519.verify(withS(s), msg, pub)),
      'value false',
    );
  // Non-canonical encodings: y >= p (y = p, p + 1: the point y = 0 and the identity) and x = 0 with its sign bit set.
  const nonCanonical = [le32(P), le32(P + 1n), le32(1n | (1n << 255n)), le32(P - 1n + (1n << 255n))];
  for (const e of nonCanonical) {
    assert.is(
      same(`A = ${toHex(e)}`, (b) => b.ed25519.verify(sig, msg, e)),
      'value false',
    );
    assert.is(
      same(`R = ${toHex(e)}`, (b) => b.ed25519.verify(concatBytes(e, sig.subarray(32)), msg, pub)),
      'value false',
    );
  }
  for (const [what, call] of [
    ['a 63-byte signature', (b: CryptoBackend) => b.ed25519.verify(sig.subarray(1), msg, pub)],
    ['a 65-byte signature', (b: CryptoBackend) => b.ed25519.verify(concatBytes(sig, Uint8Array.of(0)), msg, pub)],
    ['a 31-byte key', (b: CryptoBackend) => b.ed25519.verify(sig, msg, pub.subarray(1))],
    ['a string message', (b: CryptoBackend) => b.ed25519.verify(sig, 'hello' as unknown as Bytes, pub)],
    ['a key that is not on the curve', (b: CryptoBackend) => b.ed25519.verify(sig, msg, le32(2n))],
  ] as const) {
    assert.is(same(what, call), 'value false', what);
  }
  assert.match(
    same('sign with a 31-byte seed', (b) => b.ed25519.sign(seed.subarray(1), msg)),
    /^throws /,
  );
});

test('ChaCha20-Poly1305 edges: truncated boxes, wrong key and nonce lengths, an empty box: the same error', () => {
  const key = new Uint8Array(32).fill(7);
  const nonce = new Uint8Array(12).fill(1);
  const sealed = nodeBackend.chacha20poly1305.seal(key, nonce, utf8('hello'), utf8('aad'));
  for (const [what, call] of [
    ['15 bytes (shorter than the tag)', (b: CryptoBackend) => b.chacha20poly1305.open(key, nonce, sealed.subarray(0, 15), utf8('aad'))],
    ['an empty box', (b: CryptoBackend) => b.chacha20poly1305.open(key, nonce, new Uint8Array(0), utf8('aad'))],
    ['the tag alone', (b: CryptoBackend) => b.chacha20poly1305.open(key, nonce, sealed.subarray(5), utf8('aad'))],
    ['a 31-byte key', (b: CryptoBackend) => b.chacha20poly1305.open(key.subarray(1), nonce, sealed, utf8('aad'))],
    ['an 8-byte nonce', (b: CryptoBackend) => b.chacha20poly1305.seal(key, nonce.subarray(4), utf8('x'), utf8('aad'))],
    ['a 24-byte nonce', (b: CryptoBackend) => b.chacha20poly1305.open(key, new Uint8Array(24), sealed, utf8('aad'))],
    ['a 16-byte key, seal', (b: CryptoBackend) => b.chacha20poly1305.seal(key.subarray(16), nonce, utf8('x'), utf8('aad'))],
  ] as const) {
    assert.match(same(what, call), /^throws /, what);
  }
  assert.is(same('an empty plaintext, sealed', (b) => toHex(b.chacha20poly1305.seal(key, nonce, new Uint8Array(0), new Uint8Array(0)))).length > 0, true);
});

test.run();
