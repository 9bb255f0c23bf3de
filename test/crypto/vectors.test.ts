/** Published test vectors, run through the same noble calls our crypto layer makes. */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { scrypt } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromHex, stretchPassword, toHex, utf8 } from '../../src/crypto/index.ts';

test('HKDF-SHA256, RFC 5869 test case 1', () => {
  const okm = hkdf(sha256, fromHex('0b'.repeat(22)), fromHex('000102030405060708090a0b0c'), fromHex('f0f1f2f3f4f5f6f7f8f9'), 42);
  assert.is(toHex(okm), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
});

test('HMAC-SHA256, RFC 4231 test case 2', () => {
  assert.is(toHex(hmac(sha256, utf8('Jefe'), utf8('what do ya want for nothing?'))), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
});

test('scrypt, RFC 7914 §12 first vector', () => {
  assert.is(
    toHex(scrypt(utf8(''), utf8(''), { N: 16, r: 1, p: 1, dkLen: 64 })),
    '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906',
  );
});

test('scrypt through stretchPassword (our cost checks, dkLen 32): RFC 7914 §12 vectors 1 and 2, first 32 bytes', () => {
  assert.is(toHex(stretchPassword('', utf8(''), { N: 16, r: 1, p: 1 })), '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442');
  assert.is(toHex(stretchPassword('password', utf8('NaCl'), { N: 1024, r: 8, p: 16 })), 'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162');
});

test('ChaCha20-Poly1305, RFC 8439 §2.8.2 (the AEAD of session frames, channels and grants)', () => {
  const key = fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = fromHex('070000004041424344454647');
  const aad = fromHex('50515253c0c1c2c3c4c5c6c7');
  const pt = utf8("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  const sealed = chacha20poly1305(key, nonce, aad).encrypt(pt);
  assert.is(
    toHex(sealed),
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36' +
      '92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116' +
      '1ae10b594f09e26a7e902ecbd0600691',
  );
  assert.equal(chacha20poly1305(key, nonce, aad).decrypt(sealed), pt);
  const bad = new Uint8Array(sealed);
  bad[0] = bad[0]! ^ 1;
  assert.throws(() => chacha20poly1305(key, nonce, aad).decrypt(bad));
});

test('Ed25519, RFC 8032 §7.1 test 1', () => {
  const sk = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
  assert.is(toHex(ed25519.getPublicKey(sk)), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  assert.is(
    toHex(ed25519.sign(new Uint8Array(0), sk)),
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  );
});

test('X25519, RFC 7748 §6.1', () => {
  const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bob = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  assert.is(toHex(x25519.getPublicKey(alice)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.is(toHex(x25519.getPublicKey(bob)), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  assert.is(toHex(x25519.getSharedSecret(alice, x25519.getPublicKey(bob))), '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
});

test.run();
