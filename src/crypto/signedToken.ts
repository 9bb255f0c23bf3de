/**
 * A provider's signed, single-use permission as one printable token,
 * `<prefix>.<base64url(JSON body)>.<base64url(Ed25519 signature)>`: top-up
 * vouchers (voucher.ts) and issue orders (issueOrder.ts). Each kind says how
 * its body is checked (`bodyOf`) and which bytes are signed (`bytesOf`).
 */
import { fromB64, toB64, utf8, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import { keysOf, verifySignature } from './identity.ts';

export interface TokenKind<B> {
  prefix: string;
  /** What a person calls it ("a voucher", "an issue order"). */
  what: string;
  maxChars: number;
  /** The body, checked field by field, or undefined. */
  bodyOf: (x: unknown) => B | undefined;
  bytesOf: (b: B) => Bytes;
}

export function encodeToken<B>(kind: TokenKind<B>, t: B & { sig: string }): string {
  const { sig, ...body } = t;
  return `${kind.prefix}.${toB64(utf8(JSON.stringify(body)))}.${sig}`;
}

/** Parses a token's shape (no signature check: `verifyToken` does that). Throws CryptoError('BAD_ENCODING'). */
export function decodeToken<B>(kind: TokenKind<B>, token: string): B & { sig: string } {
  const bad = (why: string) => new CryptoError('BAD_ENCODING', `not ${kind.what}: ${why}`);
  if (typeof token !== 'string' || token.length > kind.maxChars) throw bad(`a token is at most ${kind.maxChars} characters`);
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== kind.prefix) throw bad(`a token is ${kind.prefix}.<body>.<signature>`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(fromB64(parts[1]!)));
  } catch {
    throw bad('its body is not base64url JSON');
  }
  const body = kind.bodyOf(raw);
  if (!body) throw bad('its body lacks a field or has one of the wrong form');
  if (!/^[A-Za-z0-9_-]{86}$/.test(parts[2]!)) throw bad('its signature is not 64 bytes of base64url');
  return { ...body, sig: parts[2]! };
}

/** Checks the signature under `signerPublic` (any of its keys: a rotation window); returns the body. Throws CryptoError('AUTH_FAILED', `refusal`). */
export function verifyToken<B>(kind: TokenKind<B>, t: B & { sig: string }, signerPublic: Bytes | readonly Bytes[], refusal: string): B {
  const b = kind.bodyOf(t);
  let ok = false;
  try {
    ok = b !== undefined && keysOf(signerPublic).some((k) => verifySignature(k, kind.bytesOf(b), fromB64(t.sig)));
  } catch {
    ok = false;
  }
  if (!ok || !b) throw new CryptoError('AUTH_FAILED', refusal);
  return b;
}
