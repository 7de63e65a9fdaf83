/** Seeded shuffles, so an epoch's batch order is the same on every engine and every run. */
import { mulberry32 } from '@dro/llm';

/** A permutation of 0..n-1 (Fisher–Yates) determined by `seed`. */
export function seededShuffle(n: number, seed: number): number[] {
  const rand = mulberry32(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
