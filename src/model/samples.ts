/**
 * Payloads of the real shape for the test models' events: grants, receipts,
 * session frames and issue orders with every field the wire schemas
 * (src/transport/messages.ts) require, each byte string the length the
 * crypto makes it, base64url. Deterministic (seeded by a label), so a path
 * prints the same every time. The machines read none of these bytes (a
 * guard never looks inside a grant): they are what a tester sees in
 * `paths --format json` and can feed to a chart, not placeholders.
 */
import { seededRng, toB64, utf8 } from '../crypto/index.ts';
import type { MigrationItem } from '../machines/migration.logic.ts';
import type { Grant, Receipt } from '../protocol/grant.ts';

/** X25519 public key, sealed 32-byte key with its 16-byte tag, SHA-256, Ed25519 signature, key check value. */
const PUB_BYTES = 32;
const SEALED_KEY_BYTES = 48;
const HASH_BYTES = 32;
const SIG_BYTES = 64;
const KCV_BYTES = 8;
/** A session frame: nonce, a chip command or answer, tag. */
const FRAME_BYTES = 88;
/** When the sample grants expire (ms on the model's clock, where `now` is 1,000). */
const GRANT_EXPIRES_AT_MS = 61_000;

/** The samples made so far: a path search asks for the same ones in every state it visits. */
const made = new Map<string, string>();

/** `bytes` deterministic bytes for `label`, base64url. */
export function sampleB64(label: string, bytes: number): string {
  const key = `${label}/${bytes}`;
  let s = made.get(key);
  if (s === undefined) made.set(key, (s = toB64(seededRng(`sample/${label}`).bytes(bytes))));
  return s;
}

/** A session frame as it crosses the server: opaque sealed bytes. */
export const sampleFrame = (label: string): string => sampleB64(`frame/${label}`, FRAME_BYTES);

/** The grants one lock (upload) or one format (download) hands out, one per item, signed as a set. */
export function sampleGrants(mig: string, serial: string, purpose: Grant['purpose'], items: readonly MigrationItem[]): Grant[] {
  const set = items.map((i) => sampleB64(`grant-hash/${mig}/${purpose}/${i.item}`, HASH_BYTES));
  return items.map((i) => ({
    mig,
    item: i.item,
    area: i.area,
    serial,
    purpose,
    provider: i.provider,
    recipient: i.recipient,
    expiresAt: GRANT_EXPIRES_AT_MS,
    ephPub: sampleB64(`grant-eph/${mig}/${purpose}/${i.item}`, PUB_BYTES),
    sealed: sampleB64(`grant-sealed/${mig}/${purpose}/${i.item}`, SEALED_KEY_BYTES),
    set,
    sig: sampleB64(`grant-sig/${mig}/${purpose}`, SIG_BYTES),
  }));
}

/** A migration SAM's receipt for one item that reached the destination. */
export function sampleReceipt(mig: string, serial: string, item: MigrationItem): Receipt {
  return {
    mig,
    item: item.item,
    serial,
    area: item.area,
    provider: item.provider,
    kcv: sampleB64(`kcv/${mig}/${item.item}`, KCV_BYTES),
    sig: sampleB64(`receipt-sig/${mig}/${item.item}`, SIG_BYTES),
  };
}

/** An issue order token, `io1.<body>.<sig>`, for one area of one chip. */
export function sampleOrder(provider: string, serial: string, area: string): string {
  const body = {
    id: sampleB64(`order-id/${provider}`, 16),
    provider,
    serial,
    area,
    expiresAt: GRANT_EXPIRES_AT_MS,
    ephPub: sampleB64(`order-eph/${provider}`, PUB_BYTES),
    sealed: sampleB64(`order-sealed/${provider}`, 96),
  };
  return `io1.${toB64(utf8(JSON.stringify(body)))}.${sampleB64(`order-sig/${provider}`, SIG_BYTES)}`;
}
