/**
 * The runtime's one reading of real elapsed time: how long a turn's own
 * work took (for /metrics and the benchmark) and how long a batch has been
 * taking jobs (group commit's budget). No protocol decision reads it, and a
 * simulated run commits one turn at a time, where the budget never applies.
 */
export const stopwatch = {
  /** Milliseconds, monotonic, from an arbitrary origin. */
  now: (): number => performance.now(),
};
