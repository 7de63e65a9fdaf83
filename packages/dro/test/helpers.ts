/** Small deterministic helpers shared by the dro tests. */

/** A seeded uniform [0, 1) generator (the runtime's mulberry32), so fixtures are identical on every run. */
export { mulberry32 as seededRandom } from '@dro/llm';

/** k random orthonormal rows of length d (Gram–Schmidt in float64): [k * d]. */
export function orthonormalRows(k: number, d: number, rand: () => number): Float32Array {
  const rows: Float64Array[] = [];
  while (rows.length < k) {
    const v = Float64Array.from({ length: d }, () => rand() - 0.5);
    for (const r of rows) {
      const dot = v.reduce((s, x, i) => s + x * r[i]!, 0);
      for (let i = 0; i < d; i++) v[i]! -= dot * r[i]!;
    }
    const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    if (n < 1e-6) continue;
    rows.push(v.map((x) => x / n));
  }
  return Float32Array.from(rows.flatMap((r) => Array.from(r)));
}

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, writeTinyHfModel } from './llm.ts';

/** A tiny random model (HF directory in a temp folder), loaded by the real runtime. */
export async function loadTinyModel(seed = 1) {
  const dir = writeTinyHfModel(mkdtempSync(path.join(tmpdir(), 'dro-tiny-')), undefined, seed);
  return { dir, model: await loadModel(dir) };
}
