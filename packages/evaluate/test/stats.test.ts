/** The statistics behind the summary's intervals and tests, against values computed by hand / textbooks. */
import { describe, expect, it } from 'vitest';
import { mcnemarExact, meanInterval, wilsonInterval } from '../src/stats.ts';

describe('intervals and tests', () => {
  it('Wilson score interval (95 %)', () => {
    const a = wilsonInterval(8, 10);
    expect(a.estimate).toBe(0.8);
    expect(a.low).toBeCloseTo(0.4902, 4);
    expect(a.high).toBeCloseTo(0.9433, 4);
    // At 0/n the interval still has width (a Wald interval would be [0, 0]).
    const zero = wilsonInterval(0, 10);
    expect(zero.low).toBe(0);
    expect(zero.high).toBeCloseTo(0.2775, 4);
    expect(wilsonInterval(12, 12).high).toBe(1);
    expect(wilsonInterval(0, 0)).toMatchObject({ low: 0, high: 1 });
  });

  it('Student-t interval of a mean', () => {
    const m = meanInterval([1, 2, 3, 4, 5]);
    expect(m.mean).toBe(3);
    // sd = 1.5811, se = 0.7071, t(0.975, 4) = 2.7764.
    expect(m.low).toBeCloseTo(3 - 2.776445 * 0.707107, 5);
    expect(m.high).toBeCloseTo(3 + 2.776445 * 0.707107, 5);
    expect(meanInterval([2])).toMatchObject({ mean: 2, low: 2, high: 2, n: 1 });
  });

  it('exact McNemar test on the discordant pairs', () => {
    // 0 vs 3 discordant: p = 2 · (1/2)^3.
    const a = [false, false, false, true, false];
    const b = [true, true, true, true, false];
    expect(mcnemarExact(a, b)).toMatchObject({ onlyA: 0, onlyB: 3 });
    expect(mcnemarExact(a, b).p).toBeCloseTo(0.25, 12);
    // 1 vs 9: p = 2 · (1 + 10) / 2^10.
    const x = [...Array(9).fill(false), true, ...Array(5).fill(true)];
    const y = [...Array(9).fill(true), false, ...Array(5).fill(true)];
    expect(mcnemarExact(x, y).p).toBeCloseTo((2 * 11) / 1024, 12);
    // No discordant pairs: nothing to test.
    expect(mcnemarExact([true, false], [true, false]).p).toBe(1);
    expect(() => mcnemarExact([true], [])).toThrow(/1 vs 0/);
  });
});
