/**
 * Every timeout and retry delay valmove uses, in one place (style.md: limits
 * are named constants with units). Parties take a Timing in their deps, so
 * tests and the simulator can run the same protocol on shorter clocks;
 * machines receive the values they need as input or event data, never by
 * import (they stay pure).
 */
export interface Timing {
  /** A chip session (authentication and commands) must finish within this, or it fails and its step is retried. */
  sessionMs: number;
  /** An unanswered request is sent again after this, doubling up to retransmitCapMs, until it is answered. */
  retransmitMs: number;
  retransmitCapMs: number;
  /** A failed step is retried after this, doubling up to retryCapMs. */
  retryBaseMs: number;
  retryCapMs: number;
  /** How long the preflight waits for every provider's answer. */
  preflightMs: number;
  /**
   * How long a receiver keeps the record of a request it answered (to answer
   * a repeat with the same reply). Past it, and once the request's migration
   * is settled, the record is pruned and a repeat is refused STALE_REQUEST.
   * Far above the longest time a sender keeps sending a request again.
   */
  inboxRetentionMs: number;
}

export const DEFAULT_TIMING: Timing = {
  sessionMs: 30_000,
  retransmitMs: 1_000,
  retransmitCapMs: 15_000,
  retryBaseMs: 200,
  retryCapMs: 30_000,
  preflightMs: 30_000,
  inboxRetentionMs: 60 * 60 * 1000,
};

/** For the demo under faults, the embedded suites and fault runs: the same protocol on a faster clock. */
export const FAST_TIMING: Timing = {
  sessionMs: 1_500,
  retransmitMs: 30,
  retransmitCapMs: 200,
  retryBaseMs: 30,
  retryCapMs: 300,
  preflightMs: 5_000,
  inboxRetentionMs: 10_000,
};
