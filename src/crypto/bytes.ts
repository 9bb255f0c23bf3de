/** Byte helpers at the crypto boundary: strict encodings, constant-time comparison, unambiguous field encoding. */
import { CryptoError } from './errors.ts';

export type Bytes = Uint8Array;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function concatBytes(...parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const utf8 = (s: string): Bytes => enc.encode(s);

export function fromUtf8(b: Bytes): string {
  try {
    return dec.decode(b);
  } catch {
    throw new CryptoError('BAD_ENCODING', 'bytes are not valid UTF-8');
  }
}

export function toHex(b: Bytes): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(s: string): Bytes {
  if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new CryptoError('BAD_ENCODING', 'not an even-length hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** base64url without padding (RFC 4648 §5). */
export function toB64(b: Bytes): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * Strict base64url: any character outside the alphabet (padding, '+', '/',
 * whitespace), an impossible length, or non-zero unused trailing bits is
 * refused. Buffer alone would silently skip such characters, so two different
 * strings could stand for the same key or signature.
 */
export function fromB64(s: string): Bytes {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) {
    throw new CryptoError('BAD_ENCODING', 'not base64url without padding');
  }
  const out = new Uint8Array(Buffer.from(s, 'base64url'));
  if (toB64(out) !== s) throw new CryptoError('BAD_ENCODING', 'base64url with non-zero trailing bits is not canonical');
  return out;
}

/** Constant time in the length of the inputs; different lengths compare unequal. */
export function equalBytes(a: Bytes, b: Bytes): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

const U32_MAX = 2 ** 32 - 1;
const U64_MAX = 2n ** 64n - 1n;

/** Big-endian u32; anything but an integer in [0, 2^32) is refused rather than wrapped. */
export function u32be(n: number): Bytes {
  if (!Number.isInteger(n) || n < 0 || n > U32_MAX) throw new CryptoError('BAD_ENCODING', 'a 32-bit field must be an integer in [0, 2^32)');
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

/**
 * Big-endian u64. A number must be a safe non-negative integer: 1.5 or -1
 * would otherwise throw a RangeError deep inside a MAC input, or 2^53 + 1
 * would silently round to another value.
 */
export function u64be(n: number | bigint): Bytes {
  const ok = typeof n === 'bigint' ? n >= 0n && n <= U64_MAX : Number.isSafeInteger(n) && n >= 0;
  if (!ok) throw new CryptoError('BAD_ENCODING', 'a 64-bit field must be a non-negative safe integer');
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export function readU64be(b: Bytes, offset = 0): bigint {
  if (!Number.isSafeInteger(offset) || offset < 0 || b.length < offset + 8) throw new CryptoError('BAD_ENCODING', 'too short for a 64-bit counter');
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(offset);
}

/**
 * Unambiguous encoding of MAC, signature and HKDF inputs: each field is a
 * type byte (0 string, 1 bytes, 2 number as u64be), a u32be length and its
 * content, so ("ab", "c") and ("a", "bc") never collide, nor "1" and 1.
 */
export function encodeFields(...fields: Array<string | Bytes | number>): Bytes {
  const parts: Bytes[] = [];
  for (const f of fields) {
    let tag: number;
    let body: Bytes;
    if (typeof f === 'string') [tag, body] = [0, utf8(f)];
    else if (typeof f === 'number') [tag, body] = [2, u64be(f)];
    else if (f instanceof Uint8Array) [tag, body] = [1, f];
    else throw new CryptoError('BAD_ENCODING', 'a field must be a string, bytes or a number');
    parts.push(Uint8Array.of(tag), u32be(body.length), body);
  }
  return concatBytes(...parts);
}
