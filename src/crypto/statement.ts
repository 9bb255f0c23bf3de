/**
 * The user's receipt (issue 22, point 4; protocol.md §3, "The receipt").
 *
 * A **statement** is a migration SAM's signed word about one item it moved:
 * migration, item, provider, area, chip serial, direction (`out` of the
 * source at S7, `in` to the destination at S14), the item's public state (what
 * normal use shows its holder: kind and balance, or a ticket's event, seat and
 * use; never the item's encoding or its `ref`) and when. It travels sealed to
 * the user's phone (an X25519 box to the key of the phone's device key), so
 * the server relays and keeps ciphertext only.
 *
 * The **outcome** is the admin SAM's signed word about the migration: its
 * decision, source and destination, the items, and the digests of the
 * statements the server reported at the decision — one signature over them,
 * as for a grant set.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { openSealed, sealTo, type SealedBox } from './box.ts';
import { encodeFields, fromB64, toB64, utf8, type Bytes } from './bytes.ts';
import { keysOf, sign, verifySignature, type Identity } from './identity.ts';
import type { Rng } from './random.ts';
import { Secret } from './secret.ts';

export const STATEMENT_INFO = 'valmove/v1/statement';
export const OUTCOME_INFO = 'valmove/v1/outcome';

/** What normal use shows the holder of an item: never its encoding or its ref. */
export interface PublicValue {
  kind: string;
  balance?: number;
  state?: string;
}

export interface StatementBody {
  mig: string;
  item: number;
  provider: string;
  area: string;
  serial: string;
  direction: 'out' | 'in';
  value: PublicValue;
  at: number;
}

export interface Statement extends StatementBody {
  /** The migration SAM's Ed25519 signature, base64url. */
  sig: string;
}

/** A statement as the server relays it: sealed to `to` (an X25519 public key), with its digest in clear. */
export interface SealedStatement extends SealedBox {
  item: number;
  direction: 'out' | 'in';
  to: string;
  digest: string;
}

export interface OutcomeBody {
  mig: string;
  decision: 'committed' | 'aborted';
  source: string;
  /** '' when there is none. */
  destination: string;
  items: Array<{ item: number; area: string; provider: string }>;
  statements: Array<{ item: number; direction: 'out' | 'in'; digest: string }>;
  at: number;
}

export interface Outcome extends OutcomeBody {
  /** The admin SAM's Ed25519 signature, base64url. */
  sig: string;
}

function publicValueJson(v: PublicValue): string {
  return JSON.stringify({ kind: v.kind, ...(v.balance !== undefined ? { balance: v.balance } : {}), ...(v.state !== undefined ? { state: v.state } : {}) });
}

/** The bytes a statement's signature covers: every field, in a fixed order. */
export function statementBytes(s: StatementBody): Bytes {
  return encodeFields(STATEMENT_INFO, s.mig, s.item, s.provider, s.area, s.serial, s.direction, publicValueJson(s.value), s.at);
}

/** A signed statement's digest: what the outcome lists. */
export function statementDigest(s: Statement): string {
  return toB64(sha256(encodeFields('valmove/v1/statement-digest', statementBytes(s), fromB64(s.sig))));
}

export function signStatement(body: StatementBody, signer: Identity): Statement {
  const b: StatementBody = { ...body, value: JSON.parse(publicValueJson(body.value)) as PublicValue };
  return { ...b, sig: toB64(sign(signer, statementBytes(b))) };
}

/** Never throws: a malformed signature is simply not valid. */
/** Whether one of the signer's keys (two in a rotation window, deploying.md) signed the bytes. */
function signedBy(signerPublic: Bytes | readonly Bytes[], bytes: () => Bytes, sig: string): boolean {
  try {
    const [b, s] = [bytes(), fromB64(sig)];
    return keysOf(signerPublic).some((k) => verifySignature(k, b, s));
  } catch {
    return false;
  }
}

export function statementSigned(s: Statement, signerPublic: Bytes | readonly Bytes[]): boolean {
  return signedBy(signerPublic, () => statementBytes(s), s.sig);
}

function aadOf(s: { mig: string; item: number; direction: string }): Bytes {
  return utf8(`${s.mig}/${s.item}/${s.direction}`);
}

/** Seals a signed statement to the phone's X25519 key (base64url). */
export function sealStatement(s: Statement, to: string, rng: Rng): SealedStatement {
  const box = sealTo(fromB64(to), utf8(JSON.stringify(s)), STATEMENT_INFO, aadOf(s), rng);
  return { ...box, item: s.item, direction: s.direction, to, digest: statementDigest(s) };
}

/** The X25519 key a phone receives statements at: its device key (Ed25519) in Montgomery form. */
export function receiptKeyOf(deviceSignPublic: Bytes): string {
  return toB64(ed25519.utils.toMontgomery(deviceSignPublic));
}

/** Opens a statement sealed to this phone (its device identity), for migration `mig`. */
export function openStatement(device: Identity, mig: string, s: SealedStatement): Statement {
  const boxSecret = Secret.of(ed25519.utils.toMontgomerySecret(device.signSecret.reveal()));
  const recipient = { ...device, boxSecret, boxPublic: fromB64(receiptKeyOf(device.signPublic)) };
  const plain = openSealed(recipient, s.ephPub, s.sealed, STATEMENT_INFO, aadOf({ mig, item: s.item, direction: s.direction }));
  return JSON.parse(new TextDecoder().decode(plain)) as Statement;
}

/** The bytes an outcome's signature covers: every field, in a fixed order. */
export function outcomeBytes(o: OutcomeBody): Bytes {
  const items = o.items.map((i) => [i.item, i.area, i.provider]);
  const statements = o.statements.map((s) => [s.item, s.direction, s.digest]);
  return encodeFields(OUTCOME_INFO, o.mig, o.decision, o.source, o.destination, JSON.stringify(items), JSON.stringify(statements), o.at);
}

export function signOutcome(body: OutcomeBody, signer: Identity): Outcome {
  return { ...body, sig: toB64(sign(signer, outcomeBytes(body))) };
}

export function outcomeSigned(o: Outcome, signerPublic: Bytes | readonly Bytes[]): boolean {
  return signedBy(signerPublic, () => outcomeBytes(o), o.sig);
}
