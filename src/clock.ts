/**
 * Time enters valmove only through a Clock (simulation.md: nothing inside a
 * run reads Date.now() or timers directly). systemClock is the one place that
 * touches the real ones; the simulator substitutes a virtual clock.
 */
export interface Clock {
  now(): number;
  /** Calls fn once, at or after `atMs` on this clock; returns a cancel function. */
  schedule(atMs: number, fn: () => void): () => void;
}

/** setTimeout's largest delay; longer waits are re-armed in steps. */
const TIMEOUT_MS_MAX = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(atMs, fn) {
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = () => {
      const delay = atMs - Date.now();
      if (delay <= 0) {
        timer = setTimeout(() => !cancelled && fn(), 0);
      } else {
        timer = setTimeout(() => !cancelled && arm(), Math.min(delay, TIMEOUT_MS_MAX));
      }
      timer.unref();
    };
    arm();
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
  },
};
