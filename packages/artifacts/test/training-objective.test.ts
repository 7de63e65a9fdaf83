/** DRO's training objective, read off shift rows: met, moved the wrong way, barely moved, too few moved. */
import { describe, expect, it } from 'vitest';
import { formatObjective, trainingObjective, type TrainingShiftRow } from '../src/index.ts';

function rows(harmful: number[], harmless: number[], base = (i: number) => i * 0.5): TrainingShiftRow[] {
  const row = (label: 'harmful' | 'harmless', shift: number, i: number) => ({
    queryId: `${label}-${i}`, label, baseRefusal: base(i), softRefusal: base(i) + shift, baseHarmfulness: 0, softHarmfulness: 0,
  });
  return [...harmful.map((s, i) => row('harmful', s, i)), ...harmless.map((s, i) => row('harmless', s, i))];
}

describe('trainingObjective', () => {
  it('is met when both labels moved the intended way, most queries and by enough', () => {
    const o = trainingObjective(rows([-1, -0.8, -1.2, 0.1], [0.5, 0.7, -0.1, 0.4]));
    expect(o.met).toBe(true);
    expect(o.harmful).toMatchObject({ queries: 4, movedAsIntended: 3, share: 0.75 });
    expect(o.harmful.meanShift).toBeCloseTo(-0.725, 12);
    expect(o.harmless.movedAsIntended).toBe(3);
    expect(formatObjective(o)).toMatch(/^met: harmful → refusal 3\/4 \(mean Δr −0\.72\), harmless → compliance 3\/4 \(mean Δr \+0\.38\)$/);
  });

  it('is not met when harmful queries moved toward compliance', () => {
    const o = trainingObjective(rows([0.3, 0.2, -0.1, 0.4], [0.5, 0.7, 0.1, 0.4]));
    expect(o.met).toBe(false);
    expect(o.shortfalls.join('; ')).toMatch(/harmful queries did not move toward refusal on average.*only 1\/4 harmful/);
    expect(formatObjective(o)).toMatch(/^NOT MET/);
  });

  it('is not met when the prompt barely moved, even if every tiny step went the right way', () => {
    const o = trainingObjective(rows([-1e-9, -1e-9], [1e-9, 1e-9]));
    expect(o.met).toBe(false);
    expect(o.shortfalls).toHaveLength(2);
    expect(o.shortfalls[0]).toMatch(/harmful queries barely moved/);
  });

  it('is not met when too few queries of a label moved, at the configured share', () => {
    const shifts = rows([-2, -2, 0.1, 0.1], [1, 1, 1, 1]);
    expect(trainingObjective(shifts, 0.5).met).toBe(true);
    expect(trainingObjective(shifts, 0.75).shortfalls).toEqual([expect.stringMatching(/only 2\/4 harmful queries moved toward refusal \(needs ≥ 75 %\)/)]);
  });

  it('is not met without queries of a label', () => {
    expect(trainingObjective(rows([-1, -1], [])).shortfalls).toEqual(['no harmless training queries']);
  });
});
