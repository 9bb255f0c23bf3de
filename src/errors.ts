/**
 * Every refusal valmove sends or throws carries a stable code (for programs)
 * and a sentence (for people), as ws does with WS_ERR_* codes. Messages never
 * contain key bytes, passwords or plaintext item values.
 */
import { TEXT_CHARS_MAX } from './transport/messages.ts';

export const ERROR_CODES = [
  // envelope and transport (src/transport)
  'BAD_JSON',
  'BAD_ENVELOPE',
  'UNKNOWN_TYPE',
  'BAD_BODY',
  'TOO_LARGE',
  'BAD_SENDER',
  'UNEXPECTED',
  'NOT_FOUND',
  'UNAUTHENTICATED',
  'BUSY',
  'UNREACHABLE',
  // stores (src/store, the runtime's inbox)
  'STALE_REQUEST',
  'STORE_FULL',
  // users and authority
  'LOGIN_FAILED',
  'LOCKED_OUT',
  'NOT_OWNER',
  'NOT_REGISTERED',
  'NOT_TRUSTED',
  'RIGHT_DENIED',
  'DEVICE_LIMIT',
  'NOT_AUTHORISED',
  'VOUCHER_REFUSED',
  'ORDER_REFUSED',
  'CHANNEL_RESERVED',
  // chip and areas
  'AREA_LOCKED',
  'AREA_STATE',
  'AREA_HELD',
  'AREA_ABSENT',
  'AREA_EXISTS',
  'AUTH_FAILED',
  'SESSION_FAILED',
  'FRAME_REJECTED',
  'KEY_CHECK_FAILED',
  'COMMAND_REFUSED',
  'STALE_COUNTER',
  // migration
  'PREFLIGHT_FAILED',
  'NO_MIGRATION',
  'WRONG_DESTINATION',
  'GRANT_REFUSED',
  'RECEIPT_REFUSED',
  'DECISION_STANDS',
  'MIGRATION_ABORTED',
  'INSUFFICIENT_FUNDS',
  'TICKET_USED',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

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

  toBody(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(s: string): s is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(s);
}

/** An error another party reported (its code may be one this build does not know). */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
