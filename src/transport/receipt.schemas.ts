/**
 * The receipt's parts as zod schemas, with bounds: what the wire carries
 * (sealed statements, the signed outcome; docs/wire.md) and the receipt file
 * `valmove receipt verify` reads.
 */
import { z } from 'zod';

export const RECEIPT_FORMAT = 'valmove-receipt/1';
/** Items per migration (transport/messages.ts ITEMS_PER_MIGRATION_MAX): a statement out and one in per item at most. */
const ITEMS_MAX = 64;
const B64URL = /^[A-Za-z0-9_-]*$/;
const name = z.string().min(1).max(128);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const b64 = (max: number) => z.string().max(max).regex(B64URL, 'base64url');
const direction = z.enum(['out', 'in']);
/** A sealed statement's box, base64url: a statement of short names and a public state fits (a longer one is not sent). */
export const SEALED_STATEMENT_CHARS_MAX = 1024;
/**
 * Statements one migrate.result carries: with the outcome, the envelope stays under its 64 KiB limit (each
 * sealed statement ~1.3 KB at most). 24 covers the most items `demo` and `up` move (20); a migration of more
 * items gets a receipt that lists these only, which verify refuses as incomplete (docs/limits.md).
 */
export const RESULT_STATEMENTS_MAX = 24;

export const statementSchema = z.strictObject({
  mig: name,
  item: count,
  provider: name,
  area: name,
  serial: name,
  direction,
  value: z.strictObject({ kind: name, balance: count.optional(), state: z.string().max(512).optional() }),
  at: count,
  sig: b64(128),
});

export const outcomeSchema = z.strictObject({
  mig: name,
  decision: z.enum(['committed', 'aborted']),
  source: z.string().max(128),
  // '' when there is none (a migration aborted before its destination was formatted).
  destination: z.string().max(128),
  items: z.array(z.strictObject({ item: count, area: name, provider: name })).max(ITEMS_MAX),
  statements: z.array(z.strictObject({ item: count, direction, digest: b64(64) })).max(2 * ITEMS_MAX),
  at: count,
  sig: b64(128),
});

/** A statement as the server relays it: sealed to the phone's key `to`, its digest in clear. */
export const sealedStatementSchema = z.strictObject({
  item: count,
  direction,
  to: b64(64),
  digest: b64(64),
  ephPub: b64(64),
  sealed: b64(SEALED_STATEMENT_CHARS_MAX),
});

/** The digests the server hands the admin SAM with its commit or abort (what the outcome lists). */
export const statementDigestsSchema = z.array(z.strictObject({ item: count, direction, digest: b64(64) })).max(2 * ITEMS_MAX);

/** What migrate.result carries at the end: the signed outcome, and the statements sealed to this phone. */
export const resultReceiptSchema = z.strictObject({ outcome: outcomeSchema, statements: z.array(sealedStatementSchema).max(RESULT_STATEMENTS_MAX) });

export const receiptFileSchema = z.strictObject({
  format: z.literal(RECEIPT_FORMAT),
  outcome: outcomeSchema,
  statements: z.array(statementSchema).max(2 * ITEMS_MAX),
});
export type ReceiptFile = z.infer<typeof receiptFileSchema>;
