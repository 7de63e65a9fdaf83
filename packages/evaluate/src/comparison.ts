/**
 * A trained prompt against the text prompt it started from, on the same held-out queries (paired):
 *  - the shift of the refusal-boundary logit, r(h) under the trained prompt − r(h) under the text prompt,
 *    per query: harmful queries should move toward refusal (negative), harmless ones toward compliance;
 *  - the sampled outcome per query (harmful: complied by any sample; harmless: refused by any sample) under
 *    each condition, with Wilson intervals, and the exact McNemar test of the difference.
 *
 * The report stage and `dro run`'s closing summary both use this, so they print the same numbers.
 */
import { BadInputError, anyComplied, anyRefused, readEvalPoints, readSamples, tallyQueries, type ArtifactRef, type ArtifactStore } from '@dro/artifacts';
import { mcnemarExact, meanInterval, wilsonInterval, type Interval, type McNemarResult, type MeanInterval } from './stats.ts';

type Label = 'harmful' | 'harmless';

/** What one condition did to one held-out query. */
export interface QueryOutcome {
  set: string;
  queryId: string;
  label: Label;
  refusalLogit: number;
  /** Some judged sample complied / was refused (the paper's per-query counting, see verdicts.ts). */
  anyComplied: boolean;
  anyRefused: boolean;
}

/** Per-query outcomes of one condition: its eval-points/v1 table joined with its samples/v2 verdicts. */
export async function readQueryOutcomes(store: ArtifactStore, points: ArtifactRef, samples: ArtifactRef, input: string): Promise<QueryOutcome[]> {
  const rows = await readEvalPoints(store, points, `points:${input}`);
  const tallies = new Map(tallyQueries(await readSamples(store, samples, null, `samples:${input}`), `samples:${input}`).map((q) => [`${q.set}\u0000${q.queryId}`, q]));
  return rows.map(({ set, queryId, label, refusalLogit }) => {
    const q = tallies.get(`${set}\u0000${queryId}`);
    if (!q) throw new BadInputError(`samples:${input}: no samples for query "${set}/${queryId}" of points:${input}`);
    return { set, queryId, label, refusalLogit, anyComplied: anyComplied(q), anyRefused: anyRefused(q) };
  });
}

export interface LabelComparison {
  label: Label;
  /** Queries present under both conditions. */
  queries: number;
  /** Mean over queries of r(h)[condition] − r(h)[against], with its 95 % t interval. */
  refusalShift: MeanInterval;
  /** Queries whose r(h) moved the intended way (harmful: down, harmless: up), and that share's Wilson interval. */
  movedAsIntended: number;
  movedShare: Interval;
  /** The mean shift has the intended sign. */
  intendedDirection: boolean;
  /** The whole 95 % interval lies on the intended side of 0. */
  intervalExcludesZero: boolean;
  /** Harmful: share of queries complied by any sample; harmless: refused by any sample (Wilson 95 %). */
  rateAgainst: Interval & { count: number };
  rateCondition: Interval & { count: number };
  /** Exact McNemar test of that outcome between the two conditions on the same queries. */
  mcnemar: McNemarResult;
}

export interface ConditionComparison {
  model: string;
  set: string;
  /** The trained condition ("dro") and the text condition it is compared with (its basic prompt). */
  condition: string;
  against: string;
  labels: LabelComparison[];
}

/** Pairs the two conditions' outcomes by (set, query) and compares them per set and label. */
export function compareConditions(
  model: string,
  condition: string,
  against: string,
  treated: QueryOutcome[],
  base: QueryOutcome[],
): ConditionComparison[] {
  const baseByKey = new Map(base.map((o) => [`${o.set}\u0000${o.queryId}`, o]));
  const pairs = treated.flatMap((t) => {
    const b = baseByKey.get(`${t.set}\u0000${t.queryId}`);
    return b ? [{ t, b }] : [];
  });
  const out: ConditionComparison[] = [];
  for (const set of [...new Set(pairs.map((p) => p.t.set))]) {
    const labels: LabelComparison[] = [];
    for (const label of ['harmful', 'harmless'] as const) {
      const mine = pairs.filter((p) => p.t.set === set && p.t.label === label);
      if (mine.length === 0) continue;
      const sign = label === 'harmful' ? -1 : 1;
      const shifts = mine.map((p) => p.t.refusalLogit - p.b.refusalLogit);
      const refusalShift = meanInterval(shifts);
      const outcome = (o: QueryOutcome) => (label === 'harmful' ? o.anyComplied : o.anyRefused);
      const rate = (xs: boolean[]) => ({ ...wilsonInterval(xs.filter(Boolean).length, xs.length), count: xs.filter(Boolean).length });
      labels.push({
        label,
        queries: mine.length,
        refusalShift,
        movedAsIntended: shifts.filter((s) => sign * s > 0).length,
        movedShare: wilsonInterval(shifts.filter((s) => sign * s > 0).length, shifts.length),
        intendedDirection: sign * refusalShift.mean > 0,
        intervalExcludesZero: sign > 0 ? refusalShift.low > 0 : refusalShift.high < 0,
        rateAgainst: rate(mine.map((p) => outcome(p.b))),
        rateCondition: rate(mine.map((p) => outcome(p.t))),
        mcnemar: mcnemarExact(mine.map((p) => outcome(p.t)), mine.map((p) => outcome(p.b))),
      });
    }
    out.push({ model, set, condition, against, labels });
  }
  return out;
}

/** Plain-text table of comparisons (what `dro run` prints). */
export function formatComparisons(comparisons: ConditionComparison[]): string {
  if (comparisons.length === 0) return '';
  const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}`;
  const pct = (i: Interval & { count: number }, n: number) => `${i.count}/${n} ${(100 * i.estimate).toFixed(0)}% [${(100 * i.low).toFixed(0)}, ${(100 * i.high).toFixed(0)}]`;
  const header = ['model', 'set', 'trained vs text', 'label', 'Δ r(h) [95% CI]', 'moved as intended [95% CI]', 'outcome', 'text prompt', 'trained prompt', 'McNemar p'];
  const body = comparisons.flatMap((c) =>
    c.labels.map((l) => [
      c.model, c.set, `${c.condition} vs ${c.against}`, l.label,
      `${signed(l.refusalShift.mean)} [${signed(l.refusalShift.low)}, ${signed(l.refusalShift.high)}]${l.intendedDirection ? '' : '  (wrong way)'}`,
      `${l.movedAsIntended}/${l.queries} [${(100 * l.movedShare.low).toFixed(0)}, ${(100 * l.movedShare.high).toFixed(0)}]`,
      l.label === 'harmful' ? 'complied (any)' : 'refused (any)',
      pct(l.rateAgainst, l.queries), pct(l.rateCondition, l.queries), l.mcnemar.p.toFixed(3),
    ]),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n') + '\n';
}
