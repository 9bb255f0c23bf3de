/** Small statistics for the benchmark: percentiles, least-squares slopes, a bounded worker pool. */

/** The q-quantile (0..1) of `xs` by nearest rank; NaN for an empty list. */
export function percentile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Least-squares slope and intercept of y over x; slope NaN with fewer than two distinct x. */
export function fitLine(points: ReadonlyArray<readonly [number, number]>): { slope: number; intercept: number } {
  const n = points.length;
  if (n < 2) return { slope: Number.NaN, intercept: points[0]?.[1] ?? Number.NaN };
  const mx = mean(points.map((p) => p[0]));
  const my = mean(points.map((p) => p[1]));
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    sxx += (x - mx) ** 2;
    sxy += (x - mx) * (y - my);
  }
  if (sxx === 0) return { slope: Number.NaN, intercept: my };
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx };
}

/** Runs fn over 0..n-1 with at most `limit` in flight; rejects with the first failure. */
export async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, n)) }, worker));
}

/** Rounds for display: 3 significant digits, no exponent below 1e9. */
export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}
