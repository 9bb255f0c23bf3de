/**
 * Temp-key grants (S3, S10) and download receipts (S15) (protocol.md §2–3).
 *
 * A grant is the temp key sealed to one migration SAM's X25519 key, with its
 * binding (migration, item, area, chip serial, purpose, provider, recipient,
 * expiry), all signed by the admin SAM's Ed25519 key: the grants issued
 * together (a lock's, a format's) under one signature, over the list of
 * their digests (issue 19: one signature per set, not per item); each grant
 * carries the list, and is valid when its own digest is in a signed list. A receipt is a
 * migration SAM's signed statement that an item reached a destination area,
 * with the key check value of the main key it installed.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeFields, fromB64, toB64, type Bytes } from './bytes.ts';
import { openSealed, sealTo } from './box.ts';
import { CryptoError } from './errors.ts';
import { Lru } from './lru.ts';
import { requireKey } from './keys.ts';
import { keysOf, sign, verifySignature, withPrevious, type Identity } from './identity.ts';
import type { Rng } from './random.ts';
import { Secret } from './secret.ts';
import type { Grant, Receipt } from '../protocol/grant.ts';
import { countCrypto } from '../metrics/counters.ts';

export type { Grant, Receipt };

/** What a grant binds its temp key to: every field of the protocol table's grant but the sealed key and the signature. */
export type GrantBinding = Omit<Grant, 'ephPub' | 'sealed' | 'set' | 'sig'>;

const GRANT_INFO = 'valmove/v1/grant';
const GRANT_SET_INFO = 'valmove/v1/grant-set';
/** Grants one signature covers at most: one per item of a migration. */
export const GRANTS_PER_SET_MAX = 64;
/** Verified sets one verifier remembers (a bound: the least recently used goes first; a miss only costs a verify). */
const VERIFIED_SETS_MAX = 1024;
const BINDING_FIELDS = ['mig', 'item', 'area', 'serial', 'purpose', 'provider', 'recipient', 'expiresAt'] as const;
const PURPOSES: ReadonlySet<string> = new Set(['upload', 'download']);
/** Names and ids in a binding are short identifiers; a longer one is malformed, not a bigger grant. */
export const GRANT_FIELD_CHARS_MAX = 256;
/** ephPub (32 bytes) and sealed (32-byte key + 16-byte tag) and sig (64 bytes) are small; bound the b64 before decoding. */
const GRANT_B64_CHARS_MAX = 128;

export function grantBindingBytes(b: GrantBinding): Bytes {
  return encodeFields('valmove/v1/grant-binding', b.mig, b.item, b.area, b.serial, b.purpose, b.provider, b.recipient, b.expiresAt);
}

function grantSigned(binding: Bytes, ephPub: string, sealed: string): Bytes {
  return encodeFields(GRANT_INFO, binding, fromB64(ephPub), fromB64(sealed));
}

const isName = (x: unknown): x is string => typeof x === 'string' && x.length <= GRANT_FIELD_CHARS_MAX;
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isB64 = (x: unknown): x is string => typeof x === 'string' && x.length <= GRANT_B64_CHARS_MAX;

/**
 * The binding fields only, each checked for type (a grant arrives as JSON
 * from another party): a string item or a float expiry would otherwise reach
 * the signature check as something other than what was signed.
 */
function bindingOf(g: GrantBinding, code: 'GRANT_INVALID' | 'BAD_PARAMS'): GrantBinding {
  const ok =
    typeof g === 'object' &&
    g !== null &&
    isName(g.mig) &&
    isCount(g.item) &&
    isName(g.area) &&
    isName(g.serial) &&
    PURPOSES.has(g.purpose) &&
    isName(g.provider) &&
    isName(g.recipient) &&
    isCount(g.expiresAt);
  if (!ok) throw new CryptoError(code, 'the grant binding is malformed: a field is missing, of the wrong type or too long');
  return { mig: g.mig, item: g.item, area: g.area, serial: g.serial, purpose: g.purpose, provider: g.provider, recipient: g.recipient, expiresAt: g.expiresAt };
}

/** What a grant binds, as one digest: its binding, its ephemeral key and its sealed box. */
function grantDigest(b: GrantBinding, ephPub: string, sealed: string): string {
  countCrypto('sha256');
  return toB64(sha256(grantSigned(grantBindingBytes(b), ephPub, sealed)));
}

/** What the set's signature covers. */
function setBytes(set: readonly string[]): Bytes {
  return encodeFields(GRANT_SET_INFO, ...set);
}

/** One grant to issue: its binding, the temp key, and the recipient's X25519 key. */
export interface GrantOrder {
  binding: GrantBinding;
  tempKey: Secret;
  recipientBoxPublic: Bytes;
}

/** Grants issued together, each sealed to its recipient, under one signature over their digests. */
export function issueGrants(orders: readonly GrantOrder[], issuer: Identity, rng: Rng): Grant[] {
  if (orders.length === 0 || orders.length > GRANTS_PER_SET_MAX) throw new CryptoError('BAD_PARAMS', `a set holds 1 to ${GRANTS_PER_SET_MAX} grants`);
  const sealedOnes = orders.map((o) => {
    const b = bindingOf(o.binding, 'BAD_PARAMS');
    requireKey(o.tempKey, 'a granted temp key');
    const { ephPub, sealed } = sealTo(o.recipientBoxPublic, o.tempKey.reveal(), GRANT_INFO, grantBindingBytes(b), rng);
    return { ...b, ephPub, sealed };
  });
  const set = sealedOnes.map((g) => grantDigest(g, g.ephPub, g.sealed));
  const sig = toB64(sign(issuer, setBytes(set)));
  return sealedOnes.map((g) => ({ ...g, set, sig }));
}

/** One grant alone (a set of one). */
export function issueGrant(binding: GrantBinding, tempKey: Secret, recipientBoxPublic: Bytes, issuer: Identity, rng: Rng): Grant {
  return issueGrants([{ binding, tempKey, recipientBoxPublic }], issuer, rng)[0]!;
}

/**
 * The signed sets one verifier has checked (issuer, set digest, signature):
 * another grant of a set it checked needs no second verify. Each migration
 * SAM keeps its own; bounded, the least recently used goes first (a miss costs a verify).
 */
export class VerifiedSets extends Lru<true> {
  constructor() {
    super(VERIFIED_SETS_MAX);
  }
}

function setSigned(issuerSignPublic: Bytes, set: readonly string[], sig: string, seen: VerifiedSets | undefined): boolean {
  const bytes = setBytes(set);
  countCrypto('sha256');
  const id = `${toB64(issuerSignPublic)}.${toB64(sha256(bytes))}.${sig}`;
  if (seen?.get(id)) return true;
  if (!verifySignature(issuerSignPublic, bytes, fromB64(sig))) return false;
  seen?.set(id, true);
  return true;
}

/**
 * Checks shape, signature, expiry and binding, in that order: nothing about
 * an unsigned grant (not even that it expired) is worth reporting. Returns
 * the binding.
 */
export function verifyGrant(
  grant: Grant,
  issuerSignPublic: Bytes | readonly Bytes[],
  expect: Partial<GrantBinding>,
  nowMs: number,
  seen?: VerifiedSets,
): GrantBinding {
  const b = bindingOf(grant, 'GRANT_INVALID');
  let ok = false;
  try {
    ok =
      isB64(grant.ephPub) &&
      isB64(grant.sealed) &&
      isB64(grant.sig) &&
      Array.isArray(grant.set) &&
      grant.set.length >= 1 &&
      grant.set.length <= GRANTS_PER_SET_MAX &&
      grant.set.every(isB64) &&
      grant.set.includes(grantDigest(b, grant.ephPub, grant.sealed)) &&
      // Any key the verifier trusts for the admin SAM: two during its key's rotation window (docs/deploying.md).
      keysOf(issuerSignPublic).some((k) => setSigned(k, grant.set, grant.sig, seen));
  } catch {
    ok = false;
  }
  if (!ok) throw new CryptoError('GRANT_INVALID', 'the grant is not signed by the admin SAM');
  if (!(nowMs <= b.expiresAt)) throw new CryptoError('GRANT_EXPIRED', `the grant expired at ${b.expiresAt}`);
  for (const f of BINDING_FIELDS) {
    // Names the field, never its value: the caller knows what it expected.
    if (expect[f] !== undefined && expect[f] !== b[f]) throw new CryptoError('GRANT_BINDING', `the grant is bound to another ${f}`);
  }
  return b;
}

/** Decrypts the temp key (sealed to the recipient's key, or to its previous one in a rotation window); it does not check the signature (verifyGrant does). */
export function openGrant(grant: Grant, recipient: Identity): Secret {
  try {
    const b = bindingOf(grant, 'GRANT_INVALID');
    if (!isB64(grant.ephPub) || !isB64(grant.sealed)) throw new CryptoError('GRANT_INVALID', 'malformed');
    const key = withPrevious(recipient, (id) => openSealed(id, grant.ephPub, grant.sealed, GRANT_INFO, grantBindingBytes(b)));
    const secret = Secret.of(key);
    key.fill(0);
    requireKey(secret, 'a granted temp key');
    return secret;
  } catch {
    throw new CryptoError('GRANT_INVALID', "the grant does not open with this migration SAM's key");
  }
}

/** What a receipt's signature covers: every field of the protocol table's receipt but the signature. */
export type ReceiptBody = Omit<Receipt, 'sig'>;

function receiptBytes(r: ReceiptBody): Bytes {
  return encodeFields('valmove/v1/receipt', r.mig, r.item, r.serial, r.area, r.provider, r.kcv);
}

/** The body fields only, type-checked: a receipt arrives as JSON relayed by the server. */
function receiptBodyOf(r: ReceiptBody): ReceiptBody | undefined {
  const ok =
    typeof r === 'object' && r !== null && isName(r.mig) && isCount(r.item) && isName(r.serial) && isName(r.area) && isName(r.provider) && isName(r.kcv);
  return ok ? { mig: r.mig, item: r.item, serial: r.serial, area: r.area, provider: r.provider, kcv: r.kcv } : undefined;
}

export function signReceipt(body: ReceiptBody, signer: Identity): Receipt {
  const b = receiptBodyOf(body);
  if (!b) throw new CryptoError('BAD_PARAMS', 'the receipt body is malformed: a field is missing, of the wrong type or too long');
  return { ...b, sig: toB64(sign(signer, receiptBytes(b))) };
}

/** `signerPublic`: the migration SAM's key, or its keys during a rotation window (either one signs). */
export function verifyReceipt(r: Receipt, signerPublic: Bytes | readonly Bytes[]): ReceiptBody {
  const b = receiptBodyOf(r);
  let ok = false;
  try {
    ok = b !== undefined && isB64(r.sig) && keysOf(signerPublic).some((k) => verifySignature(k, receiptBytes(b), fromB64(r.sig)));
  } catch {
    ok = false;
  }
  if (!ok || !b) {
    const which = b ? `the receipt for item ${b.item}` : 'a malformed receipt';
    throw new CryptoError('RECEIPT_INVALID', `${which} is not signed by its migration SAM`);
  }
  return b;
}
