/**
 * A box between two parties that know each other's X25519 keys: the main
 * key, from a provider's normal SAM to the same provider's migration SAM
 * (issue 19). Both run under the provider's key file; they share a secret
 * (static-static ECDH of their box keys), so a main key moves with no
 * public-key operation of its own: the pair key is computed once per pair
 * and kept (bounded), and each box takes a fresh random 24-byte nonce
 * (XChaCha20-Poly1305, from noble: node:crypto has no XChaCha), which
 * makes one key safe for any number of boxes. The agreement runs on the
 * party's crypto backend (backend.choice.ts).
 * `aad` binds a box to what it is for.
 *
 * What changes against a one-time box (box.ts): no forward secrecy per key.
 * Whoever later steals either SAM's X25519 secret can open main keys it
 * recorded in transit; but those two SAMs hold the provider master's
 * derivations anyway (the normal SAM derives every main key), so the theft
 * that opens these boxes already yields every main key.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { currentBackend } from './backend.ts';
import { concatBytes, fromB64, toB64, utf8, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import { keysOf, type Identity } from './identity.ts';
import { Lru } from './lru.ts';
import type { Rng } from './random.ts';
import { countCrypto } from '../metrics/counters.ts';

const X25519_BYTES = 32;
const NONCE_BYTES = 24;
/** Pair keys one identity keeps (a provider's SAMs have one pair; the bound is for a party that meets many). */
export const PAIR_KEYS_MAX = 1024;

/** Each identity's pair keys, by peer and purpose: kept with the identity object, gone with it. */
const pairKeysOf = new WeakMap<Identity, Lru<Bytes>>();

/** The key two parties share for `info`: HKDF of their X25519 shared secret, salted with both public keys in order. */
function pairKey(mine: Identity, theirBoxPublic: Bytes, info: string): Bytes {
  if (!(theirBoxPublic instanceof Uint8Array) || theirBoxPublic.length !== X25519_BYTES) {
    throw new CryptoError('BAD_KEY', `a peer's X25519 public key must be ${X25519_BYTES} bytes`);
  }
  const a = toB64(mine.boxPublic);
  const b = toB64(theirBoxPublic);
  const [first, second] = a < b ? [a, b] : [b, a];
  const id = `${first}.${second}.${info}`;
  let pairKeys = pairKeysOf.get(mine);
  if (!pairKeys) pairKeysOf.set(mine, (pairKeys = new Lru(PAIR_KEYS_MAX)));
  const kept = pairKeys.get(id);
  if (kept) return kept;
  countCrypto('x25519.ecdh');
  let shared: Bytes;
  try {
    shared = currentBackend().x25519.shared(mine.boxSecret, theirBoxPublic);
  } catch {
    throw new CryptoError('BAD_KEY', "the peer's X25519 public key is not a usable point");
  }
  countCrypto('hkdf');
  const [lo, hi] = a < b ? [mine.boxPublic, theirBoxPublic] : [theirBoxPublic, mine.boxPublic];
  const key = hkdf(sha256, shared, concatBytes(lo, hi), utf8(info), 32);
  shared.fill(0);
  pairKeys.set(id, key);
  return key;
}

export interface PairBox {
  nonce: string;
  sealed: string;
}

/** Seals `plaintext` for the party whose X25519 public key is `theirBoxPublic`. */
export function sealForPair(mine: Identity, theirBoxPublic: Bytes, plaintext: Bytes, info: string, aad: Bytes, rng: Rng): PairBox {
  const key = pairKey(mine, theirBoxPublic, info);
  const nonce = rng.bytes(NONCE_BYTES);
  countCrypto('aead.seal.box', plaintext.length);
  return { nonce: toB64(nonce), sealed: toB64(xchacha20poly1305(key, nonce, aad).encrypt(plaintext)) };
}

/**
 * Opens a box the party whose X25519 public key is `theirBoxPublic` sealed for us. In a rotation window of either
 * party, a box sealed before it (an outbox's, persisted) opens under the old pair key: `theirBoxPublic` lists the
 * peer's keys (new first), and our previous identity is tried after ours.
 */
export function openFromPair(mine: Identity, theirBoxPublic: Bytes | readonly Bytes[], box: PairBox, info: string, aad: Bytes): Bytes {
  const mines = mine.previous ? [mine, mine.previous] : [mine];
  let first: unknown;
  for (const id of mines) {
    for (const theirs of keysOf(theirBoxPublic)) {
      try {
        return openPairBox(id, theirs, box, info, aad);
      } catch (e) {
        first ??= e;
      }
    }
  }
  throw first;
}

function openPairBox(mine: Identity, theirBoxPublic: Bytes, box: PairBox, info: string, aad: Bytes): Bytes {
  const key = pairKey(mine, theirBoxPublic, info);
  try {
    const nonce = fromB64(box.nonce);
    if (nonce.length !== NONCE_BYTES) throw new Error('nonce length');
    const sealed = fromB64(box.sealed);
    countCrypto('aead.open.box', sealed.length);
    return xchacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch {
    throw new CryptoError('SEAL_INVALID', 'the sealed box does not open with this key for this purpose');
  }
}
