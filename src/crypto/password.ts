/** Password stretching (protocol.md §2, users): scrypt, from @noble/hashes. */
import { scrypt } from '@noble/hashes/scrypt.js';
import { equalBytes, fromB64, toB64, utf8 } from './bytes.ts';
import type { Rng } from './random.ts';

export interface PasswordRecord {
  alg: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  hash: string;
}

export const SCRYPT_DEFAULTS = { N: 2 ** 15, r: 8, p: 1 } as const;
/** A record asking for more work than this is refused, so a forged record can not make a check hang. */
export const SCRYPT_N_MAX = 2 ** 20;

export function stretchPassword(password: string, salt: Uint8Array, params: { N: number; r: number; p: number }): Uint8Array {
  if (params.N > SCRYPT_N_MAX || params.r > 32 || params.p > 16) throw new RangeError('scrypt parameters are above the allowed cost');
  return scrypt(utf8(password), salt, { N: params.N, r: params.r, p: params.p, dkLen: 32 });
}

export function hashPassword(password: string, rng: Rng, params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS): PasswordRecord {
  const salt = rng.bytes(16);
  return { alg: 'scrypt', N: params.N, r: params.r, p: params.p, salt: toB64(salt), hash: toB64(stretchPassword(password, salt, params)) };
}

export function verifyPassword(password: string, rec: PasswordRecord): boolean {
  try {
    return equalBytes(stretchPassword(password, fromB64(rec.salt), rec), fromB64(rec.hash));
  } catch {
    return false;
  }
}
