/**
 * Crypto failures carry a stable code and a sentence; they never contain key
 * bytes or plaintext (style.md: secrets are types, errors are for people).
 * The codes are the registry's (src/protocol/errors.ts): the crypto family, plus the
 * two crypto shares with chip sessions and channels (AUTH_FAILED, BUSY). This
 * class stays apart from ProtocolError so src/crypto imports no party code.
 */
import type { ErrorCodeOf } from '../protocol/errors.ts';

/**
 * BAD_PARAMS: a cost or size parameter outside its limit (scrypt cost, random byte count).
 * BUSY: the responder's handshake budget (limits.ts, HANDSHAKES_PER_S) is spent for now: retry in a moment.
 * SEAL_INVALID: a sealed key box (box.ts) does not open: wrong recipient, purpose or binding.
 */
export type CryptoErrorCode = ErrorCodeOf<'crypto'> | 'AUTH_FAILED' | 'BUSY';

export class CryptoError extends Error {
  override readonly name = 'CryptoError';
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
  ) {
    super(message);
  }
}
