/**
 * Crypto failures carry a stable code and a sentence; they never contain key
 * bytes or plaintext (style.md: secrets are types, errors are for people).
 */
export type CryptoErrorCode =
  | 'BAD_ENCODING'
  | 'BAD_KEY'
  /** A cost or size parameter outside its limit (scrypt cost, random byte count). */
  | 'BAD_PARAMS'
  | 'AUTH_FAILED'
  | 'FRAME_REPLAY'
  | 'FRAME_REORDER'
  | 'FRAME_TAMPERED'
  | 'FRAME_TOO_LARGE'
  | 'GRANT_INVALID'
  | 'GRANT_EXPIRED'
  | 'GRANT_BINDING'
  | 'RECEIPT_INVALID'
  | 'HANDSHAKE_FAILED'
  | 'UNTRUSTED_PEER'
  /** The responder's handshake budget (limits.ts, HANDSHAKES_PER_S) is spent for now: retry in a moment. */
  | 'BUSY'
  | 'CHANNEL_REPLAY'
  | 'CHANNEL_TAMPERED'
  /** A sealed key box (box.ts) does not open: wrong recipient, purpose or binding. */
  | 'SEAL_INVALID';

export class CryptoError extends Error {
  override readonly name = 'CryptoError';
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
  ) {
    super(message);
  }
}
