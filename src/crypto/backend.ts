/**
 * One crypto interface, two backends (issue 19): the public-key and AEAD
 * primitives the protocol uses, behind `CryptoBackend`.
 *
 *   node   node:crypto (OpenSSL), keys kept as KeyObjects: for the parties that run on servers
 *   noble  @noble/curves and @noble/ciphers: portable (a chip, a browser), and the reference
 *
 * Both give the same bytes for the same inputs and the same answer, or the
 * same error, for every malformed or hostile one (test/crypto/backend.test.ts
 * checks it: published vectors, each backend opening what the other sealed,
 * and the edge cases). HKDF, HMAC, SHA-256 and scrypt stay on @noble/hashes
 * for both: HKDF measures the same as node's hkdfSync at the protocol's sizes
 * (about 11 µs for 64 bytes; noble is faster for 32), and HMAC and SHA-256 are
 * 2 to 5 µs either way, some tens of µs per migration: not where it counts.
 *
 * Which backend a party uses: backend.choice.ts. What code that names none
 * gets: currentBackend() below.
 */
import type { Bytes } from './bytes.ts';
import type { Secret } from './secret.ts';
import { backendForRole } from './backend.choice.ts';

export const BACKEND_NAMES = ['node', 'noble'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/**
 * A private or symmetric key. A Secret is long-lived (an identity, a session
 * key): a backend may keep a prepared form of it, dropped when the Secret is
 * wiped. Bytes are a key used once (an ephemeral X25519 key, a box key).
 */
export type KeyInput = Secret | Bytes;

export interface CryptoBackend {
  readonly name: BackendName;
  readonly x25519: {
    /** The public key of a 32-byte secret (RFC 7748, clamped). */
    publicKey(secret: KeyInput): Bytes;
    /**
     * The shared secret with a peer's public key. Throws (noble's error, from
     * either backend) for a low-order peer key, whose result would be known
     * to anyone, and for a key of the wrong length.
     */
    shared(secret: KeyInput, peerPublic: Bytes): Bytes;
  };
  readonly ed25519: {
    publicKey(seed: KeyInput): Bytes;
    /** Deterministic (RFC 8032): both backends give the same 64 bytes. */
    sign(seed: KeyInput, msg: Bytes): Bytes;
    /**
     * Strict RFC 8032 verification as noble does it with zip215: false:
     * non-canonical encodings, small-order public keys and S >= L are not
     * valid. Never throws: anything malformed is simply not valid.
     */
    verify(sig: Bytes, msg: Bytes, publicKey: Bytes): boolean;
  };
  readonly chacha20poly1305: {
    /** RFC 8439 AEAD: ciphertext then the 16-byte tag. */
    seal(key: KeyInput, nonce: Bytes, plaintext: Bytes, aad: Bytes): Bytes;
    /** Throws Error('invalid tag') (noble's, from either backend) when the box fails authentication. */
    open(key: KeyInput, nonce: Bytes, sealed: Bytes, aad: Bytes): Bytes;
  };
}

/**
 * The backend of code that names none (setup, tools, and every party but the
 * chip, which names its own): VALMOVE_CRYPTO's, else node. Read at each call,
 * so a test may set VALMOVE_CRYPTO between runs. Throws CryptoChoiceError on a
 * VALMOVE_CRYPTO that names no backend.
 */
export function currentBackend(): CryptoBackend {
  return backendForRole('server');
}
