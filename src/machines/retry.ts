/**
 * A failed step's backoff, for the machines that retry (migration, backup): the base delay doubling with each
 * attempt, up to the cap. Pure: the values come from the machine's context (its `timing` input).
 */

/** Doublings after which the delay stops growing (it is at its cap long before). */
const DOUBLINGS_MAX = 16;

/** When a step that failed at `now`, after `attempts` earlier failures, is tried again. */
export function retryAt(now: number, attempts: number, timing: { retryBaseMs: number; retryCapMs: number }): number {
  return now + Math.min(timing.retryCapMs, timing.retryBaseMs * 2 ** Math.min(attempts, DOUBLINGS_MAX));
}
