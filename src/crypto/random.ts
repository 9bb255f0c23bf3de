/**
 * Every random byte valmove uses comes through an Rng (simulation.md): the
 * system one in production, a seeded one in simulation so a seed replays
 * byte for byte. systemRng is the only place that touches the OS source.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { utf8 } from './bytes.ts';
import { CryptoError } from './errors.ts';

export interface Rng {
  bytes(n: number): Uint8Array;
}

export interface SeededRng extends Rng {
  nextU32(): number;
  /** A float in [0, 1). */
  nextFloat(): number;
}

/** The protocol asks for 16- and 32-byte values; a request past this is a bug, not a need. */
export const RNG_BYTES_MAX = 64 * 1024;

function checkCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > RNG_BYTES_MAX) {
    throw new CryptoError('BAD_PARAMS', `random byte count must be an integer in [0, ${RNG_BYTES_MAX}]`);
  }
}

export const systemRng: Rng = {
  bytes(n: number) {
    checkCount(n);
    return randomBytes(n);
  },
};

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator), seeded from
 * sha256 of the seed. Not for keys in production: for reproducible runs.
 */
export function seededRng(seed: number | string): SeededRng {
  const h = sha256(utf8(`valmove/v1/seed/${String(seed)}`));
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  let a = v.getUint32(0);
  let b = v.getUint32(4);
  let c = v.getUint32(8);
  let d = v.getUint32(12);
  const nextU32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) nextU32();
  return {
    nextU32,
    nextFloat: () => nextU32() / 2 ** 32,
    bytes(n: number) {
      checkCount(n);
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i += 4) {
        const x = nextU32();
        for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (x >>> (8 * j)) & 0xff;
      }
      return out;
    },
  };
}
