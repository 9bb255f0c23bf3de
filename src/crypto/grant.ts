/**
 * Temp-key grants and download receipts (protocol.md §2–3).
 *
 * A grant is the temp key sealed to one migration SAM's X25519 key, with its
 * binding (migration, item, area, chip serial, purpose, provider, recipient,
 * expiry), all signed by the admin SAM's Ed25519 key. A receipt is a
 * migration SAM's signed statement that an item reached a destination area,
 * with the key check value of the main key it installed.
 */
import { encodeFields, fromB64, toB64, type Bytes } from './bytes.ts';
import { openSealed, sealTo } from './box.ts';
import { CryptoError } from './errors.ts';
import { sign, verifySignature, type Identity } from './identity.ts';
import type { Rng } from './random.ts';
import { Secret } from './secret.ts';

export interface GrantBinding {
  mig: string;
  item: number;
  area: string;
  serial: string;
  purpose: 'upload' | 'download';
  provider: string;
  recipient: string;
  expiresAt: number;
}

export interface Grant extends GrantBinding {
  ephPub: string;
  sealed: string;
  sig: string;
}

const GRANT_INFO = 'valmove/v1/grant';
const BINDING_FIELDS = ['mig', 'item', 'area', 'serial', 'purpose', 'provider', 'recipient', 'expiresAt'] as const;

export function grantBindingBytes(b: GrantBinding): Bytes {
  return encodeFields('valmove/v1/grant-binding', b.mig, b.item, b.area, b.serial, b.purpose, b.provider, b.recipient, b.expiresAt);
}

function grantSigned(binding: Bytes, ephPub: string, sealed: string): Bytes {
  return encodeFields(GRANT_INFO, binding, fromB64(ephPub), fromB64(sealed));
}

function bindingOf(g: GrantBinding): GrantBinding {
  return { mig: g.mig, item: g.item, area: g.area, serial: g.serial, purpose: g.purpose, provider: g.provider, recipient: g.recipient, expiresAt: g.expiresAt };
}

export function issueGrant(binding: GrantBinding, tempKey: Secret, recipientBoxPublic: Bytes, issuer: Identity, rng: Rng): Grant {
  const b = bindingOf(binding);
  const bytes = grantBindingBytes(b);
  const { ephPub, sealed } = sealTo(recipientBoxPublic, tempKey.reveal(), GRANT_INFO, bytes, rng);
  const sig = toB64(sign(issuer, grantSigned(bytes, ephPub, sealed)));
  return { ...b, ephPub, sealed, sig };
}

/** Checks signature, expiry and binding; returns the binding. */
export function verifyGrant(grant: Grant, issuerSignPublic: Bytes, expect: Partial<GrantBinding>, nowMs: number): GrantBinding {
  const b = bindingOf(grant);
  let ok = false;
  try {
    ok = verifySignature(issuerSignPublic, grantSigned(grantBindingBytes(b), grant.ephPub, grant.sealed), fromB64(grant.sig));
  } catch {
    ok = false;
  }
  if (!ok) throw new CryptoError('GRANT_INVALID', 'the grant is not signed by the admin SAM');
  if (nowMs > b.expiresAt) throw new CryptoError('GRANT_EXPIRED', `the grant expired at ${b.expiresAt}`);
  for (const f of BINDING_FIELDS) {
    if (expect[f] !== undefined && expect[f] !== b[f]) throw new CryptoError('GRANT_BINDING', `the grant is bound to another ${f}`);
  }
  return b;
}

export function openGrant(grant: Grant, recipient: Identity): Secret {
  try {
    return Secret.of(openSealed(recipient, grant.ephPub, grant.sealed, GRANT_INFO, grantBindingBytes(bindingOf(grant))));
  } catch {
    throw new CryptoError('GRANT_INVALID', 'the grant does not open with this migration SAM\'s key');
  }
}

export interface ReceiptBody {
  mig: string;
  item: number;
  serial: string;
  area: string;
  provider: string;
  kcv: string;
}

export interface Receipt extends ReceiptBody {
  sig: string;
}

function receiptBytes(r: ReceiptBody): Bytes {
  return encodeFields('valmove/v1/receipt', r.mig, r.item, r.serial, r.area, r.provider, r.kcv);
}

export function signReceipt(body: ReceiptBody, signer: Identity): Receipt {
  const b = { mig: body.mig, item: body.item, serial: body.serial, area: body.area, provider: body.provider, kcv: body.kcv };
  return { ...b, sig: toB64(sign(signer, receiptBytes(b))) };
}

export function verifyReceipt(r: Receipt, signerPublic: Bytes): ReceiptBody {
  const b = { mig: r.mig, item: r.item, serial: r.serial, area: r.area, provider: r.provider, kcv: r.kcv };
  let ok = false;
  try {
    ok = verifySignature(signerPublic, receiptBytes(b), fromB64(r.sig));
  } catch {
    ok = false;
  }
  if (!ok) throw new CryptoError('RECEIPT_INVALID', `the receipt for item ${r.item} is not signed by its migration SAM`);
  return b;
}
