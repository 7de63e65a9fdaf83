import { describe, expect, it } from 'vitest';
import { parseDirectionsParams, relativeLabels } from '../src/index.ts';

describe('relative refusal labels', () => {
  it('min-max scale the compliance log-odds to [0, 1], keeping the order', () => {
    const raw = Float64Array.from([0.995, 0.99, 0.98, 0.999]);
    const rel = relativeLabels(raw);
    expect(Math.min(...rel)).toBe(0);
    expect(Math.max(...rel)).toBe(1);
    expect(rel[2]).toBe(0); // most refusing
    expect(rel[3]).toBe(1); // most compliant
    expect(rel[0]).toBeGreaterThan(rel[1]!);
    // log-odds, not raw probabilities: 0.99 sits nearer the bottom than a linear scale would put it
    const logit = (p: number) => Math.log(p / (1 - p));
    expect(rel[1]).toBeCloseTo((logit(0.99) - logit(0.98)) / (logit(0.999) - logit(0.98)), 12);
  });

  it('leave labels without spread unchanged (and clamp 0/1 labels)', () => {
    expect(Array.from(relativeLabels(Float64Array.from([1, 1, 1])))).toEqual([1, 1, 1]);
    const rel = relativeLabels(Float64Array.from([0, 1, 0.5]));
    expect(rel[0]).toBe(0);
    expect(rel[1]).toBe(1);
    expect(rel[2]).toBeCloseTo(0.5, 9);
  });

  it('is a validated param: by default (the paper) the scores themselves', () => {
    expect(parseDirectionsParams({}).refusalLabels).toBe('compliance');
    expect(parseDirectionsParams({ refusalLabels: 'relative' }).refusalLabels).toBe('relative');
    expect(() => parseDirectionsParams({ refusalLabels: 'ranked' })).toThrow(/refusalLabels: expected one of "compliance", "relative"/);
  });
});
