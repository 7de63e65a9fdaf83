/**
 * The statistics behind every interval and test the summary table and the report print. All intervals are
 * two-sided 95 %, over queries (the unit the paper counts in; samples of one query are not independent).
 *
 *  - wilsonInterval: a rate k/n of queries (complied by any sample, refused by any sample). Wilson's score
 *    interval stays inside [0, 1] and keeps its coverage at small n and at 0/n or n/n, where the normal
 *    ("Wald") interval collapses to a point; our quick runs have 12–25 queries per label.
 *  - meanInterval: a mean over queries (mean compliance, a mean refusal-logit shift): Student's t interval.
 *  - mcnemarExact: two conditions on the same queries, a binary outcome each (e.g. any sample complied):
 *    the exact McNemar test, i.e. a two-sided binomial test of the discordant pairs against p = 1/2.
 */
import tQuantile from '@stdlib/stats-base-dists-t-quantile';

/** The standard normal's 97.5 % quantile. */
const Z95 = 1.959963984540054;

export interface Interval {
  /** Point estimate. */
  estimate: number;
  low: number;
  high: number;
}

/** Wilson score interval for k successes out of n (n = 0: the whole [0, 1]). */
export function wilsonInterval(k: number, n: number, z = Z95): Interval {
  if (n === 0) return { estimate: NaN, low: 0, high: 1 };
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { estimate: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

export interface MeanInterval extends Interval {
  mean: number;
  n: number;
}

/** Mean of xs with a Student-t 95 % interval (n < 2: no interval, low = high = the mean). */
export function meanInterval(xs: readonly number[]): MeanInterval {
  const n = xs.length;
  const mean = n ? xs.reduce((a, b) => a + b, 0) / n : NaN;
  if (n < 2) return { estimate: mean, mean, low: mean, high: mean, n };
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  const half = tQuantile(0.975, n - 1) * Math.sqrt(variance / n);
  return { estimate: mean, mean, low: mean - half, high: mean + half, n };
}

export interface McNemarResult {
  /** Queries where only condition A had the outcome. */
  onlyA: number;
  /** Queries where only condition B had the outcome. */
  onlyB: number;
  /** Exact two-sided p-value (1 when there are no discordant pairs). */
  p: number;
}

/**
 * Exact McNemar test on paired binary outcomes: with b = onlyA and c = onlyB discordant pairs,
 * p = min(1, 2 · P(X ≤ min(b, c))) for X ~ Binomial(b + c, 1/2).
 */
export function mcnemarExact(a: readonly boolean[], b: readonly boolean[]): McNemarResult {
  if (a.length !== b.length) throw new Error(`mcnemarExact: ${a.length} vs ${b.length} paired outcomes`);
  let onlyA = 0;
  let onlyB = 0;
  a.forEach((x, i) => {
    if (x && !b[i]) onlyA++;
    else if (!x && b[i]) onlyB++;
  });
  const n = onlyA + onlyB;
  const k = Math.min(onlyA, onlyB);
  // Σ_{i ≤ k} C(n, i) / 2^n, with the binomial coefficients built in log space (n can be in the hundreds).
  let logC = 0;
  let tail = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logC - n * Math.LN2);
  }
  return { onlyA, onlyB, p: n === 0 ? 1 : Math.min(1, 2 * tail) };
}

/** "0.42 [0.21, 0.64]" (or as percentages with `percent`). */
export function formatInterval(i: Interval, digits = 2, percent = false): string {
  const f = (v: number) => (percent ? `${(100 * v).toFixed(0)}%` : v.toFixed(digits));
  return `${f(i.estimate)} [${f(i.low)}, ${f(i.high)}]`;
}
