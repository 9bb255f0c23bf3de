/**
 * Top-up vouchers (protocol.md §1: creating value needs the provider's own
 * authority). A voucher is the provider's signed, single-use permission to
 * add `amount` to one area of one chip before `expiresAt`: its normal SAM
 * signs it with its Ed25519 identity, and only that normal SAM redeems it,
 * once, for exactly that chip (the serial the chip proves with its main key),
 * that area and that amount.
 *
 * It travels as one token, `vv1.<base64url(JSON body)>.<base64url(sig)>`, so
 * a provider can hand it to a user by any channel (a web shop, a receipt).
 * A voucher is a bearer permission only for its own chip: whoever holds it
 * can credit that chip, nobody can credit another.
 */
import { encodeFields, toB64, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import { sign, type Identity } from './identity.ts';
import { decodeToken, encodeToken, verifyToken, type TokenKind } from './signedToken.ts';
import type { Rng } from './random.ts';

/** Random bytes of a voucher id: single use is checked by id, so it must not be guessable or collide. */
export const VOUCHER_ID_BYTES = 16;
/** A token longer than this is refused before it is decoded. */
export const VOUCHER_TOKEN_CHARS_MAX = 1024;
/** Largest amount one voucher may carry (the same bound as a balance). */
export const VOUCHER_AMOUNT_MAX = 1_000_000_000;
const PREFIX = 'vv1';
const NAME = /^[A-Za-z0-9._:/@+#-]{1,128}$/;

export interface VoucherBody {
  id: string;
  provider: string;
  serial: string;
  area: string;
  amount: number;
  expiresAt: number;
}

export interface Voucher extends VoucherBody {
  sig: string;
}

function voucherBytes(b: VoucherBody): Bytes {
  return encodeFields('valmove/v1/voucher', b.id, b.provider, b.serial, b.area, b.amount, b.expiresAt);
}

function bodyOf(x: unknown): VoucherBody | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const r = x as Record<string, unknown>;
  const ok =
    typeof r.id === 'string' &&
    /^[A-Za-z0-9_-]{22}$/.test(r.id) &&
    typeof r.provider === 'string' &&
    NAME.test(r.provider) &&
    typeof r.serial === 'string' &&
    NAME.test(r.serial) &&
    typeof r.area === 'string' &&
    NAME.test(r.area) &&
    Number.isInteger(r.amount) &&
    (r.amount as number) > 0 &&
    (r.amount as number) <= VOUCHER_AMOUNT_MAX &&
    Number.isInteger(r.expiresAt) &&
    (r.expiresAt as number) > 0;
  if (!ok) return undefined;
  return {
    id: r.id as string,
    provider: r.provider as string,
    serial: r.serial as string,
    area: r.area as string,
    amount: r.amount as number,
    expiresAt: r.expiresAt as number,
  };
}

/** The provider's normal SAM signs a voucher. */
export function issueVoucher(body: Omit<VoucherBody, 'id'>, signer: Identity, rng: Rng): Voucher {
  const b = bodyOf({ ...body, id: toB64(rng.bytes(VOUCHER_ID_BYTES)) });
  if (!b) throw new CryptoError('BAD_PARAMS', 'a voucher names a provider, a chip serial and an area, a whole positive amount and an expiry');
  return { ...b, sig: toB64(sign(signer, voucherBytes(b))) };
}

const VOUCHER: TokenKind<VoucherBody> = { prefix: PREFIX, what: 'a voucher', maxChars: VOUCHER_TOKEN_CHARS_MAX, bodyOf, bytesOf: voucherBytes };

export function encodeVoucher(v: Voucher): string {
  return encodeToken(VOUCHER, v);
}

/** Parses a token's shape (no signature check: `verifyVoucher` does that). Throws CryptoError('BAD_ENCODING'). */
export function decodeVoucher(token: string): Voucher {
  return decodeToken(VOUCHER, token);
}

/** Checks the provider's signature (any of its keys: `ownSignKeys` in a rotation window); returns the body. Throws CryptoError('AUTH_FAILED'). */
export function verifyVoucher(v: Voucher, signerPublic: Bytes | readonly Bytes[]): VoucherBody {
  return verifyToken(VOUCHER, v, signerPublic, 'the voucher is not signed by this provider');
}
