/**
 * Key diversification (protocol.md §1–2): K_chip per chip from the issuer
 * master, K_main per (chip, area) from the provider master; and the key check
 * value a chip answers after any key install or slot switch.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeFields, equalBytes, fromB64, utf8, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import { Secret } from './secret.ts';
import { countCrypto } from '../metrics/counters.ts';

export const KEY_BYTES = 32;
export const KCV_BYTES = 8;

/** Boundary check for every symmetric key: a short key is a bug upstream, never something to stretch or pad. */
export function requireKey(k: Secret, what: string): void {
  if (k.length !== KEY_BYTES) throw new CryptoError('BAD_KEY', `${what} must be ${KEY_BYTES} bytes`);
}

export function deriveChipKey(issuerMaster: Secret, serial: string): Secret {
  requireKey(issuerMaster, 'the issuer master key');
  countCrypto('hkdf');
  return Secret.of(hkdf(sha256, issuerMaster.reveal(), utf8('valmove/v1/k-chip'), encodeFields(serial), KEY_BYTES));
}

export function deriveMainKey(providerMaster: Secret, serial: string, area: string): Secret {
  requireKey(providerMaster, 'the provider master key');
  countCrypto('hkdf');
  return Secret.of(hkdf(sha256, providerMaster.reveal(), utf8('valmove/v1/k-main'), encodeFields(serial, area), KEY_BYTES));
}

/** MAC of a fixed string, the serial and the area under `key`: proves which key is in a slot without showing it. */
export function keyCheckValue(key: Secret, serial: string, area: string): Bytes {
  requireKey(key, 'a key checked by value');
  countCrypto('hmac');
  return hmac(sha256, key.reveal(), encodeFields('valmove/v1/kcv', serial, area)).subarray(0, KCV_BYTES);
}

/** A key check value as bytes, or null when it is absent, not canonical base64url, or not KCV_BYTES long. */
function kcvBytes(v: string | Bytes | null | undefined): Bytes | null {
  if (v instanceof Uint8Array) return v.length === KCV_BYTES ? v : null;
  if (typeof v !== 'string') return null;
  try {
    const b = fromB64(v);
    return b.length === KCV_BYTES ? b : null;
  } catch {
    return null;
  }
}

/**
 * Whether two key check values are the same, compared in constant time (the
 * byte compare verifyProof uses), as every secret-derived value is (style.md:
 * noble compares secrets in constant time): a check value is a MAC under the
 * key it vouches for, and a compare that stops at the first differing byte
 * would tell a chip forging one how many bytes it has right. Either side may
 * be base64url (as it travels) or bytes. One that is absent, not canonical
 * base64url, or not KCV_BYTES long is simply not equal: nothing throws.
 */
export function sameKcv(a: string | Bytes | null | undefined, b: string | Bytes | null | undefined): boolean {
  const x = kcvBytes(a);
  const y = kcvBytes(b);
  if (x === null || y === null) return false;
  return equalBytes(x, y);
}
