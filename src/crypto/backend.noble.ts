/**
 * The portable backend (backend.ts): @noble/curves and @noble/ciphers, pure
 * JavaScript, as a chip or a browser would run them. It is also the
 * reference: where OpenSSL and noble could differ on a malformed or hostile
 * input, backend.node.ts asks these same functions for the answer.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import type { Bytes } from './bytes.ts';
import type { CryptoBackend, KeyInput } from './backend.ts';
import { countedBackend } from './backend.counted.ts';

/** The bytes of a key (a Secret's own, not a copy: passed straight to a primitive, never kept). */
export const keyBytes = (k: KeyInput): Bytes => (k instanceof Uint8Array ? k : k.reveal());

/** noble's message when a box fails authentication; the node backend throws the same (backend.test.ts checks they match). */
export const AEAD_REFUSED = 'invalid tag';

/** Strict RFC 8032 (zip215: false); noble throws on a wrong length, which is simply not valid here. */
export function nobleVerify(sig: Bytes, msg: Bytes, publicKey: Bytes): boolean {
  try {
    return ed25519.verify(sig, msg, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export const nobleBackend: CryptoBackend = countedBackend('noble', {
  x25519: {
    publicKey: (secret) => x25519.getPublicKey(keyBytes(secret)),
    shared: (secret, peerPublic) => x25519.getSharedSecret(keyBytes(secret), peerPublic),
  },
  ed25519: {
    publicKey: (seed) => ed25519.getPublicKey(keyBytes(seed)),
    sign: (seed, msg) => ed25519.sign(msg, keyBytes(seed)),
    verify: nobleVerify,
  },
  chacha20poly1305: {
    seal: (key, nonce, plaintext, aad) => chacha20poly1305(keyBytes(key), nonce, aad).encrypt(plaintext),
    open: (key, nonce, sealed, aad) => chacha20poly1305(keyBytes(key), nonce, aad).decrypt(sealed),
  },
});
