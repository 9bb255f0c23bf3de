/**
 * Issue orders (protocol.md §1: creating value needs the provider's own
 * authority). An issue order is the provider's signed, single-use order to
 * put one value item into one area of one chip before `expiresAt`. The
 * provider's migration SAM signs it with its Ed25519 identity and seals the
 * item to its own X25519 key, so the order can travel through the phone and
 * the value-move server without either reading or changing the item; only
 * that migration SAM honours it, once, for exactly that chip and area (the
 * download grant the admin SAM signs names both).
 *
 * It travels as one token, `io1.<base64url(JSON body)>.<base64url(sig)>`.
 * Like a voucher it is a bearer permission only for its own chip.
 */
import { encodeFields, toB64, type Bytes } from './bytes.ts';
import { openSealed, sealTo } from './box.ts';
import { CryptoError } from './errors.ts';
import { sign, withPrevious, type Identity } from './identity.ts';
import { decodeToken, encodeToken, verifyToken, type TokenKind } from './signedToken.ts';
import type { Rng } from './random.ts';

/** Random bytes of an order id: single use is checked by id. */
export const ISSUE_ORDER_ID_BYTES = 16;
/** A token longer than this is refused before it is decoded (a sealed item of at most ISSUE_ORDER_ITEM_BYTES_MAX). */
export const ISSUE_ORDER_TOKEN_CHARS_MAX = 2048;
/** The largest value item an order may carry (bytes of its encoding). */
export const ISSUE_ORDER_ITEM_BYTES_MAX = 768;
export const ISSUE_ORDER_SEAL_INFO = 'valmove/v1/issue-order';
const PREFIX = 'io1';
const NAME = /^[A-Za-z0-9._:/@+#-]{1,128}$/;
const B64 = /^[A-Za-z0-9_-]+$/;

export interface IssueOrderBody {
  id: string;
  provider: string;
  serial: string;
  area: string;
  expiresAt: number;
  /** The value item, sealed to the migration SAM's X25519 key. */
  ephPub: string;
  sealed: string;
}

export interface IssueOrder extends IssueOrderBody {
  sig: string;
}

function orderBytes(b: IssueOrderBody): Bytes {
  return encodeFields('valmove/v1/issue-order', b.id, b.provider, b.serial, b.area, b.expiresAt, b.ephPub, b.sealed);
}

/** What the sealed item is bound to: this order, this chip, this area. */
function sealAad(b: Pick<IssueOrderBody, 'id' | 'provider' | 'serial' | 'area'>): Bytes {
  return encodeFields('valmove/v1/issue-order-item', b.id, b.provider, b.serial, b.area);
}

function bodyOf(x: unknown): IssueOrderBody | undefined {
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
    Number.isInteger(r.expiresAt) &&
    (r.expiresAt as number) > 0 &&
    typeof r.ephPub === 'string' &&
    /^[A-Za-z0-9_-]{43}$/.test(r.ephPub) &&
    typeof r.sealed === 'string' &&
    B64.test(r.sealed) &&
    r.sealed.length <= Math.ceil(((ISSUE_ORDER_ITEM_BYTES_MAX + 16) * 4) / 3);
  if (!ok) return undefined;
  return {
    id: r.id as string,
    provider: r.provider as string,
    serial: r.serial as string,
    area: r.area as string,
    expiresAt: r.expiresAt as number,
    ephPub: r.ephPub as string,
    sealed: r.sealed as string,
  };
}

/** The provider's migration SAM signs an order for `item` (its encoded bytes) and seals the item to itself. */
export function createIssueOrder(
  order: { provider: string; serial: string; area: string; expiresAt: number; item: Bytes },
  msam: Identity,
  rng: Rng,
): IssueOrder {
  if (order.item.length === 0 || order.item.length > ISSUE_ORDER_ITEM_BYTES_MAX) {
    throw new CryptoError('BAD_PARAMS', `an issue order carries one value item of 1 to ${ISSUE_ORDER_ITEM_BYTES_MAX} bytes`);
  }
  const id = toB64(rng.bytes(ISSUE_ORDER_ID_BYTES));
  const box = sealTo(msam.boxPublic, order.item, ISSUE_ORDER_SEAL_INFO, sealAad({ id, ...order }), rng);
  const b = bodyOf({ id, provider: order.provider, serial: order.serial, area: order.area, expiresAt: order.expiresAt, ...box });
  if (!b) throw new CryptoError('BAD_PARAMS', 'an issue order names a provider, a chip serial and an area (letters, digits and ._:/@+#-) and an expiry');
  return { ...b, sig: toB64(sign(msam, orderBytes(b))) };
}

const ORDER: TokenKind<IssueOrderBody> = { prefix: PREFIX, what: 'an issue order', maxChars: ISSUE_ORDER_TOKEN_CHARS_MAX, bodyOf, bytesOf: orderBytes };

export function encodeIssueOrder(o: IssueOrder): string {
  return encodeToken(ORDER, o);
}

/** Parses a token's shape (no signature check: `verifyIssueOrder` does that). Throws CryptoError('BAD_ENCODING'). */
export function decodeIssueOrder(token: string): IssueOrder {
  return decodeToken(ORDER, token);
}

/** Checks the migration SAM's signature (any of its keys: `ownSignKeys` in a rotation window); returns the body. Throws CryptoError('AUTH_FAILED'). */
export function verifyIssueOrder(o: IssueOrder, msamSignPublic: Bytes | readonly Bytes[]): IssueOrderBody {
  return verifyToken(ORDER, o, msamSignPublic, "the issue order is not signed by this provider's migration SAM");
}

/** The migration SAM opens the item of an order it verified (sealed to its previous key: a rotation window). Throws CryptoError('AUTH_FAILED'). */
export function openIssueOrder(b: IssueOrderBody, msam: Identity): Bytes {
  return withPrevious(msam, (id) => openSealed(id, b.ephPub, b.sealed, ISSUE_ORDER_SEAL_INFO, sealAad(b)));
}
