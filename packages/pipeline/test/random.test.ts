/**
 * The stages' seeded orderings (DRO's epoch shuffles, the directions stage's CV folds) come from one
 * function over the project's one RNG. The orders below are what the stages' former copies produced: a
 * change would change every cached training and boundary artifact.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '@dro/llm';
import { shuffledIndices } from '../src/index.ts';

describe('shuffledIndices', () => {
  it('is a permutation of 0..n−1, the same for the same seed, and what the stages always drew', () => {
    const a = shuffledIndices(12, mulberry32(0));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(shuffledIndices(12, mulberry32(0))).toEqual(a);
    expect(a).toEqual([9, 10, 4, 8, 5, 6, 7, 11, 1, 2, 0, 3]);
    expect(shuffledIndices(12, mulberry32(7))).toEqual([7, 10, 3, 5, 1, 8, 2, 4, 6, 9, 11, 0]);
    expect(shuffledIndices(0, mulberry32(0))).toEqual([]);
  });
});
