/**
 * Revocations (issue 22, protocol.md §3 "Recovery of a lost phone", §4.9):
 * a provider's migration SAM signs one for each area of a lost chip its
 * normal SAM revoked, in the turn that signs the area's re-issue order. It is
 * the only authority under which the admin SAM wipes a `mainActive` area
 * (`admin.wipe-lost`): the server relays it but cannot make one, so a rogue
 * server can not destroy spendable value by naming a chip "lost".
 *
 * It travels as one token, `rv1.<base64url(JSON body)>.<base64url(sig)>`.
 */
import { encodeFields, toB64, type Bytes } from './bytes.ts';
import { sign, type Identity } from './identity.ts';
import { decodeToken, encodeToken, verifyToken, type TokenKind } from './signedToken.ts';

/** A token longer than this is refused before it is decoded. */
export const REVOCATION_TOKEN_CHARS_MAX = 1024;
const NAME = /^[A-Za-z0-9._:/@+#-]{1,128}$/;

export interface RevocationBody {
  provider: string;
  /** The lost chip. */
  serial: string;
  area: string;
  /** The chip its item was re-issued to. */
  to: string;
}

export interface Revocation extends RevocationBody {
  sig: string;
}

function bodyOf(x: unknown): RevocationBody | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const r = x as Record<string, unknown>;
  const names = [r.provider, r.serial, r.area, r.to];
  if (!names.every((n) => typeof n === 'string' && NAME.test(n))) return undefined;
  return { provider: r.provider as string, serial: r.serial as string, area: r.area as string, to: r.to as string };
}

const bytesOf = (b: RevocationBody): Bytes => encodeFields('valmove/v1/revocation', b.provider, b.serial, b.area, b.to);

const KIND: TokenKind<RevocationBody> = { prefix: 'rv1', what: 'a revocation', maxChars: REVOCATION_TOKEN_CHARS_MAX, bodyOf, bytesOf };

/** The migration SAM signs that its provider revoked `area` of the lost chip `serial` (its item re-issued to `to`). */
export function signRevocation(body: RevocationBody, msam: Identity): string {
  const b = bodyOf(body);
  if (!b) throw new TypeError('a revocation names a provider, the lost chip, an area and the new chip');
  return encodeToken(KIND, { ...b, sig: toB64(sign(msam, bytesOf(b))) });
}

/** Parses and checks a revocation against the migration SAM's key(s); returns its body. Throws CryptoError. */
export function verifyRevocation(token: string, msamSignPublic: Bytes | readonly Bytes[]): RevocationBody {
  return verifyToken(KIND, decodeToken(KIND, token), msamSignPublic, "the revocation is not signed by this provider's migration SAM");
}

/** Parses a revocation without checking its signature (to learn which migration SAM must have signed it). Throws CryptoError. */
export function decodeRevocation(token: string): RevocationBody {
  return decodeToken(KIND, token);
}
