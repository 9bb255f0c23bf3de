/**
 * Limits read by more than one layer. This module imports nothing, so the
 * error registry (src/protocol/errors.ts) and the message catalog
 * (src/transport/messages.ts) both read it without importing each other.
 */

/**
 * Characters in one free-text field of a message: a refusal's sentence, a
 * progress line, a migration's reason. A refusal longer than this is cut
 * (errors.ts, boundedSentence) so the peer can still read it.
 */
export const TEXT_CHARS_MAX = 512;
