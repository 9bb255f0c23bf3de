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
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new CryptoError('BAD_ENCODING', 'not an even-length hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** base64url without padding (RFC 4648 §5). */
export function toB64(b: Bytes): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Strict base64url: any character outside the alphabet, or an impossible length, is refused. */
export function fromB64(s: string): Bytes {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new CryptoError('BAD_ENCODING', 'not base64url without padding');
  return new Uint8Array(Buffer.from(s, 'base64url'));
}

/** Constant time in the length of the inputs; different lengths compare unequal. */
export function equalBytes(a: Bytes, b: Bytes): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function u32be(n: number): Bytes {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0);
  return out;
}

export function u64be(n: number | bigint): Bytes {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export function readU64be(b: Bytes, offset = 0): bigint {
  if (b.length < offset + 8) throw new CryptoError('BAD_ENCODING', 'too short for a 64-bit counter');
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(offset);
}

/**
 * Unambiguous encoding of MAC, signature and HKDF inputs: each field is a
 * type byte (0 string, 1 bytes, 2 number), a u32 length and its content, so
 * ("ab", "c") and ("a", "bc") never collide.
 */
export function encodeFields(...fields: Array<string | Bytes | number>): Bytes {
  const parts: Bytes[] = [];
  for (const f of fields) {
    let tag: number;
    let body: Bytes;
    if (typeof f === 'string') [tag, body] = [0, utf8(f)];
    else if (typeof f === 'number') [tag, body] = [2, u64be(f)];
    else [tag, body] = [1, f];
    parts.push(Uint8Array.of(tag), u32be(body.length), body);
  }
  return concatBytes(...parts);
}
