/**
 * Sealing a key to one recipient's X25519 public key (an ephemeral-static
 * ECDH box): used for temp-key grants (admin SAM -> migration SAM) and main
 * keys (normal SAM -> its migration SAM). The key of each box is used once,
 * so a zero nonce is safe; `aad` binds the box to what it is for.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { currentBackend, type CryptoBackend } from './backend.ts';
import { concatBytes, fromB64, toB64, utf8, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import type { Identity } from './identity.ts';
import type { Rng } from './random.ts';
import { countCrypto } from '../metrics/counters.ts';

const ZERO_NONCE = new Uint8Array(12);
const X25519_BYTES = 32;
const BOX_KEY_BYTES = 32;

function boxKey(shared: Bytes, ephPub: Bytes, recipientPub: Bytes, info: string): Bytes {
  countCrypto('hkdf');
  return hkdf(sha256, shared, concatBytes(ephPub, recipientPub), utf8(info), BOX_KEY_BYTES);
}

export interface SealedBox {
  ephPub: string;
  sealed: string;
}

export function sealTo(recipientBoxPublic: Bytes, plaintext: Bytes, info: string, aad: Bytes, rng: Rng, crypto: CryptoBackend = currentBackend()): SealedBox {
  if (!(recipientBoxPublic instanceof Uint8Array) || recipientBoxPublic.length !== X25519_BYTES) {
    throw new CryptoError('BAD_KEY', `a recipient's X25519 public key must be ${X25519_BYTES} bytes`);
  }
  const eph = rng.bytes(X25519_BYTES);
  countCrypto('x25519.keygen');
  const ephPub = crypto.x25519.publicKey(eph);
  let shared: Bytes;
  countCrypto('x25519.ecdh');
  try {
    shared = crypto.x25519.shared(eph, recipientBoxPublic);
  } catch {
    // Both backends refuse low-order points: such a "key" would make the box key public.
    throw new CryptoError('BAD_KEY', "the recipient's X25519 public key is not a usable point");
  }
  const key = boxKey(shared, ephPub, recipientBoxPublic, info);
  countCrypto('aead.seal.box', plaintext.length);
  const sealed = crypto.chacha20poly1305.seal(key, ZERO_NONCE, plaintext, aad);
  // The ephemeral secret is what makes the box one-time: nothing may keep it.
  for (const b of [eph, shared, key]) b.fill(0);
  return { ephPub: toB64(ephPub), sealed: toB64(sealed) };
}

export function openSealed(
  recipient: Identity,
  ephPubB64: string,
  sealedB64: string,
  info: string,
  aad: Bytes,
  crypto: CryptoBackend = currentBackend(),
): Bytes {
  try {
    const ephPub = fromB64(ephPubB64);
    countCrypto('x25519.ecdh');
    const shared = crypto.x25519.shared(recipient.boxSecret, ephPub);
    const key = boxKey(shared, ephPub, recipient.boxPublic, info);
    const sealed = fromB64(sealedB64);
    countCrypto('aead.open.box', sealed.length);
    return crypto.chacha20poly1305.open(key, ZERO_NONCE, sealed, aad);
  } catch {
    throw new CryptoError('SEAL_INVALID', 'the sealed box does not open with this key for this purpose');
  }
}
