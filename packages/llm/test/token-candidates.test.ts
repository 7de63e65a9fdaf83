/**
 * Sampling from device top-k candidates picks exactly what the host sampler picks: the candidate rule
 * (token-candidates.ts) on crafted rows with ties, stop tokens and non-finite logits, and generate() end
 * to end on the default backend (native: the graph forward and the eager decoder).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../src/index.ts';
import { argmax, drawCandidate, sampleToken, suppressStopTokens } from '../src/generate/logits-processors.ts';
import { mulberry32 } from '../src/generate/rng.ts';
import { candidateCount, eagerTopCandidates as topCandidates, topKFromCandidates } from '../src/generate/token-candidates.ts';
import { registerCandidateParityTests } from './candidate-parity.ts';
import { native } from './native-backend.ts';

/** The fast path on one row (real tf top-k): null (fallback), or the token it draws for each rng seed. */
function fastPath(row: Float32Array, k: number, stops: number[], generated: number, minNewTokens: number, params: { temperature: number; topP: number }, seeds: number[]): number[] | null {
  const count = candidateCount({ topK: k, greedy: false }, stops, row.length);
  const logits = tf.tensor2d(row, [1, row.length]);
  const top = topCandidates(logits, count);
  const [values, indices, sums] = [top.values.dataSync(), top.indices.dataSync(), top.rowSums.dataSync()];
  tf.dispose([logits, top.values, top.indices, top.rowSums]);
  const picked = topKFromCandidates(values, indices, sums[0], k, generated < minNewTokens ? stops : []);
  if (picked === null) return null;
  return seeds.map((seed) => drawCandidate(picked.ids, picked.logits, null, { ...params, topK: k }, mulberry32(seed)));
}

function hostPath(row: Float32Array, k: number, stops: number[], generated: number, minNewTokens: number, params: { temperature: number; topP: number }, seeds: number[]): number[] {
  return seeds.map((seed) => {
    const copy = Float32Array.from(row);
    suppressStopTokens(copy, stops, generated, minNewTokens);
    return sampleToken(copy, { ...params, topK: k }, mulberry32(seed));
  });
}

beforeAll(async () => {
  await initBackend();
});

const seeds = Array.from({ length: 64 }, (_, i) => i * 7919 + 1);
const params = { temperature: 1, topP: 0.9 };

describe('topKFromCandidates', () => {
  it('a tie at the k-th value that runs past the fetched candidates falls back to the host path', () => {
    const row = new Float32Array(300).fill(-5);
    for (let i = 0; i < 3; i++) row[i] = 4 - i;
    for (let i = 100; i < 140; i++) row[i] = 0.5; // 40 tokens tie at ranks 4..43
    expect(fastPath(row, 5, [], 0, 0, params, seeds)).toBeNull();
  });

  it('a tie at the k-th value inside the candidates keeps every tied token, like the host path', () => {
    const row = new Float32Array(300).fill(-5);
    for (let i = 0; i < 3; i++) row[i] = 4 - i;
    for (let i = 200; i < 206; i++) row[i] = 0.5; // 6 tokens tie at ranks 4..9; k' = 5 + 0 + 8 = 13
    for (let i = 10; i < 20; i++) row[i] = -1 - i / 10;
    const fast = fastPath(row, 5, [], 0, 0, { temperature: 1, topP: 1 }, seeds);
    expect(fast).toEqual(hostPath(row, 5, [], 0, 0, { temperature: 1, topP: 1 }, seeds));
    expect(new Set(fast).size).toBeGreaterThan(5); // tied tokens past the 5th were drawn too
  });

  it('min-new-tokens: stop tokens among the top logits are removed before top-k, exactly as on the host', () => {
    const row = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i * 1.7) * 3);
    const order = [...row.keys()].sort((a, b) => row[b] - row[a]);
    const stops = order.slice(0, 3); // the three most likely tokens are stop tokens
    for (const [generated, minNewTokens] of [[0, 2], [2, 2], [5, 0]]) {
      for (const k of [1, 2, 10]) {
        const fast = fastPath(row, k, stops, generated, minNewTokens, params, seeds);
        expect(fast).not.toBeNull();
        expect(fast).toEqual(hostPath(row, k, stops, generated, minNewTokens, params, seeds));
        if (generated < minNewTokens) expect(fast!.some((t) => stops.includes(t))).toBe(false);
      }
    }
  });

  it('rows with NaN or infinite logits, or too few finite ones, go to the host path', () => {
    const base = Float32Array.from({ length: 300 }, (_, i) => Math.cos(i));
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const row = Float32Array.from(base);
      row[17] = bad;
      expect(fastPath(row, 5, [], 0, 0, params, seeds)).toBeNull();
    }
  });

  it('random rows with many ties and stop tokens: every row the fast path takes draws what the host draws', () => {
    const rng = mulberry32(99);
    let taken = 0;
    let declined = 0;
    for (let r = 0; r < 300; r++) {
      const vocab = 120 + Math.floor(rng() * 200);
      const levels = 3 + Math.floor(rng() * 40); // few distinct values: many ties
      const row = Float32Array.from({ length: vocab }, () => Math.floor(rng() * levels) / 4);
      const k = 1 + Math.floor(rng() * 60);
      const stops = Array.from({ length: Math.floor(rng() * 4) }, () => Math.floor(rng() * vocab));
      const generated = Math.floor(rng() * 3);
      const p = { temperature: 0.5 + rng() * 1.5, topP: rng() < 0.3 ? 1 : 0.5 + rng() * 0.5 };
      const rowSeeds = seeds.slice(0, 8);
      const fast = fastPath(row, k, stops, generated, 2, p, rowSeeds);
      if (fast === null) {
        declined++;
        continue;
      }
      taken++;
      expect(fast, `row ${r}`).toEqual(hostPath(row, k, stops, generated, 2, p, rowSeeds));
      // Greedy (k = 1): the first candidate is the host's argmax.
      const g = fastPath(row, 1, stops, generated, 2, p, [1]);
      if (g !== null) {
        const copy = Float32Array.from(row);
        suppressStopTokens(copy, stops, generated, 2);
        const picked = topKFromCandidates(...candidatesOf(row, stops), 1, generated < 2 ? stops : []);
        expect(picked!.ids[0]).toBe(argmax(copy));
      }
    }
    expect(taken).toBeGreaterThan(50);
    expect(declined).toBeGreaterThan(10);
  });
});

function candidatesOf(row: Float32Array, stops: number[]): [Float32Array, Int32Array, number] {
  const logits = tf.tensor2d(row, [1, row.length]);
  const top = topCandidates(logits, candidateCount({ topK: 1, greedy: true }, stops, row.length));
  const out: [Float32Array, Int32Array, number] = [top.values.dataSync() as Float32Array, top.indices.dataSync() as Int32Array, top.rowSums.dataSync()[0]];
  tf.dispose([logits, top.values, top.indices, top.rowSums]);
  return out;
}

describe('generate: device top-k path = host path', () => {
  registerCandidateParityTests(() => (native() ? ['graph', 'eager'] : ['eager']));
});
