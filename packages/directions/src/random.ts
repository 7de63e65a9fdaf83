/** Normal samples from the project's seeded RNG (@dro/llm's mulberry32), so PCA starts are reproducible across machines and engines. */

/** Standard normal sample (Box–Muller). */
export function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-300);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
