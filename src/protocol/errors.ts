/**
 * The one error registry. Every refusal valmove sends or throws, from any
 * party (terminal, server, the SAMs, the chip) or from src/crypto, carries a
 * code registered here: a stable name for programs, one sentence for people
 * (what it means), whether a retry may help, and the family it belongs to.
 * As ws does with WS_ERR_* codes. Messages never contain key bytes,
 * passwords or plaintext item values.
 *
 * Code and message travel as two fields end to end (an `error` envelope, a
 * chip `err` frame or refusal, a STEP_FAILED event, a CryptoError); nothing
 * packs them into one string for another party to split.
 *
 * `retry` — the rule. A code is `retry: true` when the failure is about the
 * moment, not about the request: a party that is busy or away, a chip
 * session that ran out of time, a frame lost, replayed, reordered or damaged
 * in transit. The same step, sent again (a new request, a new session), may
 * succeed. It is `retry: false` when the request, its sender's authority, or
 * the state it needs is wrong (NOT_TRUSTED, GRANT_REFUSED, AREA_STATE): sent
 * again unchanged it gets the same answer. A step may still be tried again a
 * bounded number of times in case the state changes (migration.logic.ts,
 * PRE_LOCK_ATTEMPTS_MAX), but nothing waits on a `false` code. Every place
 * that decides whether to retry reads this flag (mayRetry), never a list of
 * its own.
 *
 * This module imports nothing but the shared limits (./limits.ts): src/crypto,
 * src/transport, the machines and the actors all import it.
 */
import { TEXT_CHARS_MAX } from '../limits.ts';

/**
 *  transport  the message, its envelope, its delivery or the channel it rides on
 *  store      a party's durable store
 *  authority  who may do what: users, devices, trust, rights, vouchers, orders
 *  chip       a chip, its areas and sessions, and the value rules of normal use
 *  crypto     a check of bytes, keys, proofs, signatures or channel messages
 *  migration  the migration record and its steps
 */
export type ErrorFamily = 'transport' | 'store' | 'authority' | 'chip' | 'crypto' | 'migration';

export interface ErrorSpec {
  readonly family: ErrorFamily;
  /** Whether the same step, sent again, may succeed (the rule is in the module doc). */
  readonly retry: boolean;
  /** What the code means, for people: one line. */
  readonly sentence: string;
}

export const ERRORS = {
  // ---- transport (src/transport, the runtime's boundary) ----
  BAD_JSON: { family: 'transport', retry: false, sentence: 'The message is not JSON in UTF-8.' },
  BAD_ENVELOPE: { family: 'transport', retry: false, sentence: 'The envelope header is malformed, or breaks a header rule (version, ids, migration id).' },
  UNKNOWN_TYPE: { family: 'transport', retry: false, sentence: 'The message type is not one this party knows.' },
  BAD_BODY: { family: 'transport', retry: false, sentence: "The message body does not match its type's schema." },
  TOO_LARGE: { family: 'transport', retry: false, sentence: 'The message or frame is over its size limit.' },
  BAD_SENDER: { family: 'transport', retry: false, sentence: 'The message names a sender other than the peer it came from.' },
  UNEXPECTED: { family: 'transport', retry: false, sentence: 'The message is well formed, but this party does not take it here or now.' },
  NOT_FOUND: { family: 'transport', retry: false, sentence: 'The session, request or record the message names does not exist here.' },
  UNAUTHENTICATED: { family: 'transport', retry: false, sentence: 'The sender has not logged in, or its login expired; log in again.' },
  BUSY: {
    family: 'transport',
    retry: true,
    sentence: 'The party is at one of its limits for now (requests, sessions, handshakes, a reader session); try again shortly.',
  },
  DRAINING: { family: 'transport', retry: false, sentence: 'The party is shutting down (draining) and takes no new migration; try again once it is back.' },
  UNREACHABLE: { family: 'transport', retry: true, sentence: 'The party that must answer is not connected now; the step waits for it.' },
  HANDSHAKE_TIMEOUT: { family: 'transport', retry: true, sentence: 'The secure channel was not set up in time; connect again.' },
  INTERNAL: { family: 'transport', retry: false, sentence: 'The party failed in a way it did not expect, and gives no detail.' },

  // ---- store (src/store, the runtime's inbox) ----
  STALE_REQUEST: { family: 'store', retry: false, sentence: 'The request was answered long ago and its record is gone; send a new request.' },
  // retry: false keeps the migration's rule from before the registry (a full store was not in its transient list): a store
  // frees space only when a sweep prunes settled records or an operator acts, so a migration refuses rather than wait.
  STORE_FULL: { family: 'store', retry: false, sentence: "The party's store is full: it finishes work in progress and refuses new work." },

  // ---- users and authority ----
  LOGIN_FAILED: { family: 'authority', retry: false, sentence: 'Unknown user or wrong password.' },
  LOCKED_OUT: { family: 'authority', retry: false, sentence: 'Too many failed logins: the user is locked out for a while.' },
  NOT_OWNER: { family: 'authority', retry: false, sentence: 'The chip is registered to another user.' },
  NOT_REGISTERED: { family: 'authority', retry: false, sentence: 'The chip is not registered to any user.' },
  NOT_TRUSTED: { family: 'authority', retry: false, sentence: 'The party named is not one this party trusts for this.' },
  RIGHT_DENIED: { family: 'authority', retry: false, sentence: 'The provider does not grant this server the right the step needs.' },
  DEVICE_LIMIT: { family: 'authority', retry: false, sentence: 'The user already has as many devices as allowed; an operator can remove one.' },
  NOT_AUTHORISED: { family: 'authority', retry: false, sentence: 'The reader is not enrolled by the provider for this operation.' },
  VOUCHER_REFUSED: { family: 'authority', retry: false, sentence: 'The top-up voucher does not verify, or is not for this chip or area.' },
  ORDER_REFUSED: { family: 'authority', retry: false, sentence: 'The issue order does not verify, has expired, or was used already.' },
  RECOVERY_REFUSED: {
    family: 'authority',
    retry: false,
    sentence: "A lost phone's report is refused: the second proof is missing or wrong, or the chips are not the user's.",
  },
  // The user's answer, not a step's: nothing retries it but the user, reporting again.
  RECOVERY_PENDING: {
    family: 'authority',
    retry: false,
    sentence: "A lost phone's report has not had every provider's answer within the phone's wait; it stands: report again later to receive the orders.",
  },
  REPLACED: {
    family: 'authority',
    retry: false,
    sentence: "A lost phone's report was made again on this phone while it waited; the newer report gets the answer.",
  },
  // A reader job meets it while a migration holds the chip: once the migration releases the channel, it may succeed.
  CHANNEL_RESERVED: {
    family: 'authority',
    retry: true,
    sentence: 'The chip-control channel is reserved for a migration; normal use waits until it is released.',
  },

  // ---- chip, areas and sessions ----
  AREA_LOCKED: { family: 'chip', retry: false, sentence: 'The area is locked for a migration; normal use is refused.' },
  NOT_REVOKED: { family: 'authority', retry: false, sentence: "No revocation signed by the area's provider allows wiping this spendable area." },
  AREA_REVOKED: { family: 'chip', retry: false, sentence: 'The chip was reported lost: its provider revoked the area and serves it no more.' },
  AREA_STATE: { family: 'chip', retry: false, sentence: "The area's state does not allow this command or session." },
  AREA_HELD: { family: 'chip', retry: false, sentence: 'The area is held by another migration.' },
  AREA_ABSENT: { family: 'chip', retry: false, sentence: 'The area does not exist on this chip.' },
  AREA_EXISTS: { family: 'chip', retry: false, sentence: 'The area already exists on this chip.' },
  AUTH_FAILED: { family: 'chip', retry: false, sentence: 'A session proof does not verify under the key it must use.' },
  SESSION_FAILED: {
    family: 'chip',
    retry: true,
    sentence: 'The chip session did not finish (deadline, lost frames, a restarted SAM); the step is tried again with a new session.',
  },
  FRAME_REJECTED: {
    family: 'chip',
    retry: true,
    sentence: 'A session frame was malformed or not expected now (lost or mangled on the way); a new session may succeed.',
  },
  KEY_CHECK_FAILED: { family: 'chip', retry: false, sentence: "The chip's key check value does not match the key the SAM knows." },
  COMMAND_REFUSED: { family: 'chip', retry: false, sentence: 'The chip refuses the command in this session, or it breaks a value rule.' },
  // Another reader wrote first: the operation, begun again, reads the new counter.
  STALE_COUNTER: { family: 'chip', retry: true, sentence: "The area's counter moved since the write was prepared; read it again." },
  INSUFFICIENT_FUNDS: { family: 'chip', retry: false, sentence: 'The balance is less than the amount.' },
  TICKET_USED: { family: 'chip', retry: false, sentence: 'The ticket was used already.' },

  // ---- crypto (src/crypto; CryptoError) ----
  BAD_ENCODING: { family: 'crypto', retry: false, sentence: 'Bytes or a field are not in their one canonical encoding.' },
  BAD_KEY: { family: 'crypto', retry: false, sentence: 'A key has the wrong length or form.' },
  BAD_PARAMS: { family: 'crypto', retry: false, sentence: 'A cost, size or direction parameter is outside its limit.' },
  FRAME_REPLAY: { family: 'crypto', retry: true, sentence: 'A session frame counter was already used (a replayed or repeated frame).' },
  FRAME_REORDER: { family: 'crypto', retry: true, sentence: 'A session frame arrived before the one it follows.' },
  FRAME_TAMPERED: { family: 'crypto', retry: true, sentence: 'A session frame fails authentication (damaged or forged on the way).' },
  FRAME_TOO_LARGE: { family: 'crypto', retry: false, sentence: 'A session frame is over its size limit.' },
  GRANT_INVALID: { family: 'crypto', retry: false, sentence: 'The grant is malformed or its signature does not verify.' },
  GRANT_EXPIRED: { family: 'crypto', retry: false, sentence: 'The grant has expired; the admin SAM must issue a new one.' },
  GRANT_BINDING: { family: 'crypto', retry: false, sentence: 'The grant is bound to another migration, item, chip, purpose or recipient.' },
  RECEIPT_INVALID: { family: 'crypto', retry: false, sentence: 'The receipt is malformed or its signature does not verify.' },
  HANDSHAKE_FAILED: { family: 'crypto', retry: false, sentence: 'The secure channel handshake failed (wrong keys, a bad or replayed hello).' },
  UNTRUSTED_PEER: { family: 'crypto', retry: false, sentence: "The peer's key is not one this party trusts for the name it claims." },
  CHANNEL_REPLAY: { family: 'crypto', retry: true, sentence: 'A channel message was already received, or is older than the replay window.' },
  CHANNEL_TAMPERED: { family: 'crypto', retry: true, sentence: 'A channel message fails authentication (damaged or forged on the way).' },
  SEAL_INVALID: { family: 'crypto', retry: false, sentence: 'A sealed key box does not open: wrong recipient, purpose or binding.' },

  // ---- migration ----
  PREFLIGHT_FAILED: { family: 'migration', retry: false, sentence: 'The migration was refused before anything changed (chip, destination or providers).' },
  NO_MIGRATION: { family: 'migration', retry: false, sentence: 'There is no such migration here, or its source was never locked.' },
  WRONG_DESTINATION: { family: 'migration', retry: false, sentence: 'The migration is bound to another destination chip.' },
  GRANT_REFUSED: { family: 'migration', retry: false, sentence: 'The migration SAM refuses the grant; the message says which check failed.' },
  RECEIPT_REFUSED: { family: 'migration', retry: false, sentence: 'The download receipts do not prove every item reached the destination.' },
  DECISION_STANDS: { family: 'migration', retry: false, sentence: "The migration's decision record does not allow this step." },
  MIGRATION_ABORTED: { family: 'migration', retry: false, sentence: 'The migration was aborted; this step no longer runs.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Every registered code, in registry order (for schemas: z.enum(ERROR_CODES)). */
export const ERROR_CODES = Object.freeze(Object.keys(ERRORS)) as readonly ErrorCode[] as readonly [ErrorCode, ...ErrorCode[]];

/** The codes of one family. */
export type ErrorCodeOf<F extends ErrorFamily> = { [C in ErrorCode]: (typeof ERRORS)[C]['family'] extends F ? C : never }[ErrorCode];

export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && Object.hasOwn(ERRORS, s);
}

/** Whether a retry of the step that failed with `code` may help; a code this build does not know may not. */
export function mayRetry(code: string): boolean {
  return isErrorCode(code) && ERRORS[code].retry;
}

/** The registered code an error carries (a ProtocolError, a CryptoError), or `fallback` for anything else. */
export function codeOf(e: unknown, fallback: ErrorCode): ErrorCode {
  const code = e instanceof Error ? (e as { code?: unknown }).code : undefined;
  return isErrorCode(code) ? code : fallback;
}

/** A refusal as it travels: two fields, never one "CODE: message" string. */
export interface Refusal {
  code: ErrorCode;
  message: string;
}

/**
 * A refusal travels back in an `error` envelope or a chip `err` frame, whose
 * message field holds TEXT_CHARS_MAX characters. A sentence that quotes what
 * the peer sent (zod names every unrecognized key) could be longer; the peer
 * would then refuse the refusal and never learn why it was refused.
 */
function boundedSentence(message: string): string {
  if (message.length <= TEXT_CHARS_MAX) return message;
  let cut = TEXT_CHARS_MAX - 1;
  const last = message.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--; // do not split a surrogate pair
  return `${message.slice(0, cut)}…`;
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(boundedSentence(message));
  }

  toBody(): Refusal {
    return { code: this.code, message: this.message };
  }
}

/**
 * An error another party reported. A code that came in an envelope is a registry code (the `error` schema checks it);
 * one from the control API (src/deploy/control.client.ts) may be an HTTP status, so this one is a string.
 */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
