/**
 * The message catalog: every envelope type any party sends, its body schema,
 * and whether it is a request (kept in the sender's outbox until answered),
 * a reply (carries `corr`, the id of the request it answers) or a notice
 * (fire and forget: relayed session frames and progress lines).
 *
 * Bodies are validated here, once, at the transport boundary (style.md §3);
 * past decodeEnvelope() the types are trusted.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../protocol/errors.ts';
import { TEXT_CHARS_MAX } from '../limits.ts';
import type { Grant, Receipt } from '../protocol/grant.ts';
import { outcomeSchema, resultReceiptSchema, sealedStatementSchema, statementDigestsSchema } from './receipt.schemas.ts';

export { TEXT_CHARS_MAX };

/** Limits on what one body may hold; every field is bounded. */
export const NAME_CHARS_MAX = 128;
export const FRAME_DATA_CHARS_MAX = 24 * 1024; // base64 of a 16 KiB session frame plus headroom
export const ITEMS_PER_MIGRATION_MAX = 64;

/**
 * Canonical base64url without padding: one spelling per byte string. Buffer
 * would also read a length of 4n+1, or a last character with bits past the
 * data; fromB64 (src/crypto/bytes.ts) refuses those with a CryptoError, so
 * the schema refuses them too. A body that passed the boundary must not throw
 * later in a handler, where the runtime takes a non-protocol error for a bug
 * and stops the party (a login.proof of "A" stopped the server).
 */
export const B64URL = /^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$/;

const name = z
  .string()
  .min(1)
  .max(NAME_CHARS_MAX)
  .regex(/^[A-Za-z0-9._:/@+#-]+$/, 'letters, digits and ._:/@+#- only');
const b64 = (maxChars: number) => z.string().max(maxChars).regex(B64URL, 'canonical base64url without padding');
const itemIndex = z
  .number()
  .int()
  .min(0)
  .max(ITEMS_PER_MIGRATION_MAX - 1);
const text = z.string().max(TEXT_CHARS_MAX);
const ms = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const areaStateSchema = z.enum(['absent', 'provisioned', 'loaded', 'mainActive', 'locked']);
export const purposeSchema = z.enum(['register', 'source', 'destination']);
export const rightSchema = z.enum(['upload', 'download', 'clear']);
const channelPurpose = z.enum(['register', 'source', 'destination', 'backup']);
/** Where a committed migration's backup is (src/machines/backup.machine.ts). */
export const backupStateSchema = z.enum(['kept', 'waitingForSource', 'wiping', 'wiped']);

export const grantSchema = z.strictObject({
  mig: name,
  item: itemIndex,
  area: name,
  serial: name,
  purpose: z.enum(['upload', 'download']),
  provider: name,
  recipient: name,
  expiresAt: ms,
  ephPub: b64(64),
  sealed: b64(128),
  set: z.array(b64(64)).min(1).max(ITEMS_PER_MIGRATION_MAX),
  sig: b64(128),
});

export const receiptSchema = z.strictObject({
  mig: name,
  item: itemIndex,
  serial: name,
  area: name,
  provider: name,
  kcv: b64(32),
  sig: b64(128),
});

const migrationItem = z.strictObject({ item: itemIndex, area: name, provider: name, recipient: name });
/**
 * Issue orders one issuance (or one recovery's answer) carries at most (src/crypto/issueOrder.ts): each a token of
 * at most 2048 characters, so 24 of them stay under the 64 KiB envelope with room for the rest; a demo's 20 items fit.
 */
export const ORDERS_PER_ISSUANCE_MAX = 24;
/** A provider-signed revocation of one area of a lost chip (src/crypto/revocation.ts), as a token. */
const revocationToken = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[A-Za-z0-9._-]+$/, 'a revocation token, rv1.<body>.<signature>');
/** A provider-signed issue order, as a token (its shape and signature are checked by the provider's migration SAM). */
const orderToken = z
  .string()
  .min(1)
  .max(2048)
  .regex(/^[A-Za-z0-9._-]+$/, 'an issue order token, io1.<body>.<signature>');

/** A value item sealed between a provider's two SAMs (pairBox.ts). */
const pairBox = z.strictObject({ nonce: b64(64), sealed: b64(2048) });
/** Per provider, what a lost phone's report did there. */
const recoverOrders = z.strictObject({
  lost: name,
  to: name,
  providers: z
    .array(
      z.strictObject({ provider: name, outcome: z.enum(['revoked', 'refused']), areas: z.array(name).max(ITEMS_PER_MIGRATION_MAX), reason: text.optional() }),
    )
    .max(ITEMS_PER_MIGRATION_MAX),
  orders: z.array(orderToken).max(ORDERS_PER_ISSUANCE_MAX),
  /** More orders wait than one answer carries: the phone reports again once these are placed. */
  more: z.boolean().optional(),
});

/** Progress lines one notice (or one frame) carries at most. */
export const PROGRESS_LINES_MAX = 8;
const progressLine = z.strictObject({ step: name, text });
const progressNote = z.strictObject({ mig: name, step: name, text });

/** Each entry: [kind, body schema]. */
export const MESSAGES = {
  // generic: a refusal, its code one of the registry's (src/protocol/errors.ts) and its sentence, as two fields.
  error: ['reply', z.strictObject({ code: z.enum(ERROR_CODES), message: text })],

  // terminal <-> chip (the phone's local link; chip frames are already AEAD)
  'chip.select': ['request', z.strictObject({})],
  'chip.info': ['reply', z.strictObject({ serial: name, areas: z.array(z.strictObject({ area: name, provider: name })).max(ITEMS_PER_MIGRATION_MAX) })],
  // A session frame passes end to end as a notice: no hop acknowledges, stores or resends it (issue 19); a lost
  // frame is covered by the session's deadline and its step's retry. Duplicates are dropped by id at each hop.
  frame: ['notice', z.strictObject({ session: name, data: b64(FRAME_DATA_CHARS_MAX), progress: z.array(progressNote).max(PROGRESS_LINES_MAX).optional() })],

  // terminal <-> server
  'login.begin': ['request', z.strictObject({ user: name })],
  'login.challenge': [
    'reply',
    z.strictObject({
      user: name,
      salt: b64(64),
      N: z
        .number()
        .int()
        .min(2)
        .max(2 ** 20),
      r: z.number().int().min(1).max(32),
      p: z.number().int().min(1).max(16),
    }),
  ],
  'login.proof': ['request', z.strictObject({ user: name, proof: b64(64) })],
  'login.ok': ['reply', z.strictObject({ user: name })],
  'chip.register': ['request', z.strictObject({})],
  'chip.registered': ['reply', z.strictObject({ serial: name, user: name })],
  // only: the providers whose items move (selective migration; every item when absent); leaveBehind: a provider unavailable at the preflight stays behind.
  'migrate.out': [
    'request',
    z.strictObject({
      destination: name.optional(),
      deadlineMs: ms.optional(),
      only: z.array(name).max(ITEMS_PER_MIGRATION_MAX).optional(),
      leaveBehind: z.enum(['unavailable']).optional(),
    }),
  ],
  // orders: an issuance, a migration without a source (the provider's issue orders put the items on this phone's chip).
  'migrate.in': ['request', z.strictObject({ mig: name.optional(), orders: z.array(orderToken).min(1).max(ORDERS_PER_ISSUANCE_MAX).optional() })],
  'migrate.result': [
    'reply',
    z.strictObject({
      mig: name,
      phase: z.enum(['source', 'destination']),
      outcome: z.enum(['uploaded', 'completed', 'refused', 'rolledBack', 'failed']),
      reason: text.optional(),
      items: z.array(z.strictObject({ item: itemIndex, area: name, provider: name })).max(ITEMS_PER_MIGRATION_MAX),
      // At the end (completed, rolledBack): the admin SAM's signed outcome and the statements sealed to this phone.
      receipt: resultReceiptSchema.optional(),
      // Per item of the source: what became of it (selection.ts), the items not moved included.
      outcomes: z
        .array(
          z.strictObject({
            area: name,
            provider: name,
            outcome: z.enum(['moved', 'uploaded', 'pending', 'refused', 'rolledBack', 'notChosen', 'leftBehind']),
            reason: text.optional(),
          }),
        )
        .max(ITEMS_PER_MIGRATION_MAX)
        .optional(),
    }),
  ],
  'migrate.cancel': ['request', z.strictObject({ mig: name })],
  'migrate.cancelled': ['reply', z.strictObject({ mig: name, decision: z.enum(['committed', 'aborted']) })],
  // The user confirms the move: the committed migration's backup on the source chip is wiped (now, or when its phone connects).
  'backup.end': ['request', z.strictObject({ mig: name })],
  'backup.state': ['reply', z.strictObject({ mig: name, state: backupStateSchema, until: ms, wipedAt: ms.optional() })],
  // backup: the source phone's channel for the wipe of a committed migration's backup (issue 22, the end of the backup).
  'channel.reserve': ['request', z.strictObject({ purpose: channelPurpose, mig: name.optional() })],
  'channel.reserved': ['reply', z.strictObject({})],
  'channel.release': ['request', z.strictObject({ purpose: channelPurpose, mig: name.optional() })],
  'channel.released': ['reply', z.strictObject({})],
  // A turn's progress lines for one terminal travel as one notice (`more`: the lines after the first), or ride on
  // a frame that turn sends the same terminal (frame.progress): issue 19, progress coalesced.
  progress: ['notice', z.strictObject({ mig: name, step: name, text, more: z.array(progressLine).max(PROGRESS_LINES_MAX).optional() })],

  // server <-> admin SAM
  'admin.identify': ['request', z.strictObject({ session: name, purpose: purposeSchema })],
  'admin.identified': [
    'reply',
    z.strictObject({
      serial: name,
      areas: z.array(z.strictObject({ area: name, provider: name, state: areaStateSchema })).max(ITEMS_PER_MIGRATION_MAX),
    }),
  ],
  'admin.lock': ['request', z.strictObject({ session: name, serial: name, items: z.array(migrationItem).min(1).max(ITEMS_PER_MIGRATION_MAX), expiresAt: ms })],
  'admin.locked': ['reply', z.strictObject({ grants: z.array(grantSchema).max(ITEMS_PER_MIGRATION_MAX) })],
  'admin.format': [
    'request',
    z.strictObject({
      session: name,
      serial: name,
      items: z.array(migrationItem).min(1).max(ITEMS_PER_MIGRATION_MAX),
      expiresAt: ms,
      /** An issuance: no source was locked, so this format opens the decision record and makes the temp keys. */
      issuance: z.literal(true).optional(),
    }),
  ],
  'admin.formatted': ['reply', z.strictObject({ grants: z.array(grantSchema).max(ITEMS_PER_MIGRATION_MAX) })],
  'admin.commit': [
    'request',
    z.strictObject({ receipts: z.array(receiptSchema).min(1).max(ITEMS_PER_MIGRATION_MAX), statements: statementDigestsSchema.optional() }),
  ],
  // source: the chip the migration was about to lock (the admin SAM records an abort that overtook the lock).
  'admin.abort': ['request', z.strictObject({ reason: text, source: name.optional(), statements: statementDigestsSchema.optional() })],
  'admin.decision': ['reply', z.strictObject({ decision: z.enum(['committed', 'aborted']), reason: text.optional(), outcome: outcomeSchema.optional() })],
  'admin.activate': ['request', z.strictObject({ session: name, serial: name })],
  'admin.activated': ['reply', z.strictObject({ serial: name })],
  'admin.restore': ['request', z.strictObject({ session: name, serial: name })],
  'admin.restored': ['reply', z.strictObject({ serial: name })],
  'admin.wipe': ['request', z.strictObject({ session: name, serial: name, role: z.enum(['source', 'destination']) })],
  'admin.wiped': ['reply', z.strictObject({ serial: name })],
  // A found-again lost chip: its revoked areas wiped, each under its provider's revocation (protocol.md §3, §4.9).
  'admin.wipe-lost': [
    'request',
    z.strictObject({
      session: name,
      serial: name,
      items: z.array(migrationItem).min(1).max(ITEMS_PER_MIGRATION_MAX),
      revocations: z.array(revocationToken).min(1).max(ITEMS_PER_MIGRATION_MAX),
    }),
  ],
  'admin.wiped-lost': ['reply', z.strictObject({ serial: name })],

  // server <-> migration SAM
  // source: the chip to be locked (a provider refuses a chip reported lost, issue 22).
  'msam.preflight': ['request', z.strictObject({ rights: z.array(rightSchema).min(1).max(3), source: name.optional() })],
  'msam.ready': ['reply', z.strictObject({ provider: name })],
  // receiptTo: the phone's X25519 key the item's statement is sealed to (the user's receipt).
  'msam.upload': ['request', z.strictObject({ session: name, grant: grantSchema, receiptTo: b64(64).optional() })],
  'msam.uploaded': ['reply', z.strictObject({ statement: sealedStatementSchema.optional() })],
  // order: an issuance's item, which no upload brought here.
  'msam.download': ['request', z.strictObject({ session: name, grant: grantSchema, order: orderToken.optional(), receiptTo: b64(64).optional() })],
  'msam.downloaded': ['reply', z.strictObject({ receipt: receiptSchema, statement: sealedStatementSchema.optional() })],
  'msam.clear': ['request', z.strictObject({})],
  'msam.cleared': ['reply', z.strictObject({})],
  'msam.fence': ['request', z.strictObject({})],
  'msam.fenced': ['reply', z.strictObject({})],

  // lost-phone recovery (src/actors/*Recovery.ts): the report, and what each provider's SAMs answer.
  'recover.report': [
    'request',
    // held: the new chip's areas already (a report made again answers only the orders of the others).
    z.strictObject({ lost: name, to: name, code: z.string().min(1).max(64), held: z.array(name).max(ITEMS_PER_MIGRATION_MAX).optional() }),
  ],
  'recover.orders': ['reply', recoverOrders],
  'msam.recover': ['request', z.strictObject({ lost: name, to: name })],
  // revocations: one per revoked area, signed by the migration SAM (src/crypto/revocation.ts): the authority of admin.wipe-lost.
  'msam.recovered': [
    'reply',
    z.strictObject({
      areas: z.array(name).max(ITEMS_PER_MIGRATION_MAX),
      orders: z.array(orderToken).max(ORDERS_PER_ISSUANCE_MAX),
      revocations: z.array(revocationToken).max(ORDERS_PER_ISSUANCE_MAX),
    }),
  ],

  // migration SAM <-> its own normal SAM (inside one provider)
  // mig, from, item: a download's ledger entry, staged until the move is committed (nsam.moved).
  'nsam.main-key': ['request', z.strictObject({ serial: name, area: name, mig: name.optional(), from: name.optional(), item: pairBox.optional() })],
  'nsam.moved': ['request', z.strictObject({ serial: name, area: name, mig: name, committed: z.boolean() })],
  'nsam.noted': ['reply', z.strictObject({})],
  'nsam.revoke': ['request', z.strictObject({ lost: name, to: name })],
  'nsam.revoked': ['reply', z.strictObject({ items: z.array(z.strictObject({ area: name, item: pairBox })).max(ORDERS_PER_ISSUANCE_MAX) })],
  'nsam.main-key.sealed': ['reply', z.strictObject({ nonce: b64(64), sealed: b64(128) })],

  // terminal acting as a reader <-> a provider's normal SAM (normal use)
  'normal.begin': [
    'request',
    z.strictObject({
      session: name,
      op: z.enum(['balance', 'pay', 'topup', 'use']),
      area: name,
      amount: z.number().int().min(0).max(1_000_000_000).optional(),
      /** A provider-signed top-up voucher (src/crypto/voucher.ts): the provider's authority to create this value. */
      voucher: z
        .string()
        .min(1)
        .max(1024)
        .regex(/^[A-Za-z0-9._-]+$/)
        .optional(),
    }),
  ],
  'normal.receipt': [
    'reply',
    z.strictObject({
      op: z.enum(['balance', 'pay', 'topup', 'use']),
      area: name,
      kind: name,
      amount: z.number().int().optional(),
      balance: z.number().int().optional(),
      state: text.optional(),
    }),
  ],
} as const satisfies Record<string, readonly ['request' | 'reply' | 'notice', z.ZodType]>;

export type MessageType = keyof typeof MESSAGES;
export type MessageKind = 'request' | 'reply' | 'notice';
export type BodyOf<T extends MessageType> = z.infer<(typeof MESSAGES)[T][1]>;
export type { Grant, Receipt };

/** True when A and B are the same type: the wire schemas must describe the protocol table's records exactly. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export type SchemasMatchTheTable = [Same<z.infer<typeof grantSchema>, Grant>, Same<z.infer<typeof receiptSchema>, Receipt>] extends [true, true] ? true : never;
export const SCHEMAS_MATCH_THE_TABLE: SchemasMatchTheTable = true;

export function isMessageType(t: string): t is MessageType {
  return Object.hasOwn(MESSAGES, t);
}

export function kindOf(t: MessageType): MessageKind {
  return MESSAGES[t][0];
}
