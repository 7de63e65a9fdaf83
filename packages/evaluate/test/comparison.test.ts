/** Paired comparison of a trained prompt with its text prompt: every rate with its interval, McNemar on the outcome. */
import { describe, expect, it } from 'vitest';
import { compareConditions, formatComparisons, type QueryOutcome } from '../src/comparison.ts';
import { mcnemarExact, wilsonInterval } from '../src/stats.ts';

const o = (queryId: string, refusalLogit: number, anyComplied: boolean): QueryOutcome => ({ set: 'advbench', queryId, label: 'harmful', refusalLogit, anyComplied, anyRefused: !anyComplied });

describe('compareConditions', () => {
  it('pairs queries, and gives the moved share, both outcome rates and the McNemar test with intervals', () => {
    const base = [o('a', 1, true), o('b', 1, true), o('c', 1, true), o('d', 1, false)];
    const trained = [o('a', 0, false), o('b', 0.5, false), o('c', 2, true), o('d', 0, false), o('x', 0, true)];
    const [c] = compareConditions('tiny', 'dro:default', 'default', trained, base);
    const [l] = c!.labels;
    expect(l).toMatchObject({ label: 'harmful', queries: 4, movedAsIntended: 3 });
    expect(l!.movedShare).toEqual(wilsonInterval(3, 4));
    expect(l!.rateAgainst).toEqual({ ...wilsonInterval(3, 4), count: 3 });
    expect(l!.rateCondition).toEqual({ ...wilsonInterval(1, 4), count: 1 });
    expect(l!.mcnemar).toEqual(mcnemarExact([false, false, true, false], [true, true, true, false]));
    expect(formatComparisons([c!])).toMatch(/dro:default vs default +harmful .* 3\/4 \[30, 95\] +complied \(any\) +3\/4 75% \[30, 95\] +1\/4 25% \[5, 70\]/);
  });
});
