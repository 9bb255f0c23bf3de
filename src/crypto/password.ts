/** Password stretching (protocol.md §2, users): scrypt, from @noble/hashes. */
import { scrypt } from '@noble/hashes/scrypt.js';
import { equalBytes, fromB64, toB64, utf8 } from './bytes.ts';
import { CryptoError } from './errors.ts';
import type { Rng } from './random.ts';
import { countCrypto } from '../metrics/counters.ts';

export interface PasswordRecord {
  alg: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  hash: string;
}

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export const SCRYPT_DEFAULTS = { N: 2 ** 15, r: 8, p: 1 } as const;
/** A record asking for more work than this is refused, so a forged record can not make a check hang. */
export const SCRYPT_N_MAX = 2 ** 20;
/** Same reason for the other two knobs (the deploy config allows the same ranges). */
export const SCRYPT_R_MAX = 32;
export const SCRYPT_P_MAX = 16;
/**
 * Work grows with N·r·p, memory with N·r: cap both at the cost of N = 2^20,
 * r = 8, p = 1 (about 1 GiB, a few seconds), so a forged record with r = 32
 * and p = 16 is refused up front instead of computed.
 */
export const SCRYPT_WORK_MAX = 2 ** 20 * 8;
export const PASSWORD_SALT_BYTES = 16;
export const PASSWORD_HASH_BYTES = 32;

function checkParams(params: ScryptParams): void {
  const { N, r, p } = params;
  const ok =
    Number.isSafeInteger(N) &&
    N > 1 &&
    (N & (N - 1)) === 0 &&
    N <= SCRYPT_N_MAX &&
    Number.isSafeInteger(r) &&
    r >= 1 &&
    r <= SCRYPT_R_MAX &&
    Number.isSafeInteger(p) &&
    p >= 1 &&
    p <= SCRYPT_P_MAX &&
    N * r * p <= SCRYPT_WORK_MAX;
  if (!ok) throw new CryptoError('BAD_PARAMS', 'scrypt parameters are malformed or above the allowed cost');
}

/**
 * scrypt(password, salt) with checked cost. The password is encoded as UTF-8
 * exactly as typed (no normalisation): the terminal derives its login proof
 * the same way, and the two must agree byte for byte.
 */
export function stretchPassword(password: string, salt: Uint8Array, params: ScryptParams): Uint8Array {
  checkParams(params);
  countCrypto('scrypt');
  return scrypt(utf8(password), salt, { N: params.N, r: params.r, p: params.p, dkLen: PASSWORD_HASH_BYTES });
}

export function hashPassword(password: string, rng: Rng, params: ScryptParams = SCRYPT_DEFAULTS): PasswordRecord {
  checkParams(params);
  const salt = rng.bytes(PASSWORD_SALT_BYTES);
  return { alg: 'scrypt', N: params.N, r: params.r, p: params.p, salt: toB64(salt), hash: toB64(stretchPassword(password, salt, params)) };
}

/** Never throws: a malformed or over-cost record simply does not verify. */
export function verifyPassword(password: string, rec: PasswordRecord): boolean {
  try {
    if (typeof password !== 'string' || rec?.alg !== 'scrypt') return false;
    const expected = fromB64(rec.hash);
    if (expected.length !== PASSWORD_HASH_BYTES) return false;
    return equalBytes(stretchPassword(password, fromB64(rec.salt), rec), expected);
  } catch {
    return false;
  }
}
