/**
 * Seeded orderings the stages share — DRO's epoch shuffles and query subsets, the directions stage's
 * cross-validation folds — so they are the same on every engine, machine and run. The generator is the
 * project's one seeded RNG, @dro/llm's mulberry32 (passed in: importing the runtime here would load tfjs
 * into every command that only runs DAGs).
 */

/** A permutation of 0..n−1 (Fisher–Yates), drawn from `random` (uniform in [0, 1)). */
export function shuffledIndices(n: number, random: () => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
