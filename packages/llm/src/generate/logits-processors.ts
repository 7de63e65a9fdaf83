/**
 * Logits processors for sampling, applied on the host to one row of next-token logits (Float32Array [V]),
 * in HF's order: min-new-tokens, then temperature, top-k, top-p. Separate from the model so sampling
 * policies can change without touching model code.
 */
import type { Rng } from './rng.ts';

export interface SamplingParams {
  temperature: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 = off. */
  topP: number;
}

/** Forbid the stop tokens until `minNewTokens` tokens have been generated. In place. */
export function suppressStopTokens(logits: Float32Array, stopTokenIds: readonly number[], generated: number, minNewTokens: number): void {
  if (generated >= minNewTokens) return;
  for (const id of stopTokenIds) if (id >= 0 && id < logits.length) logits[id] = -Infinity;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Sample a token id after temperature, top-k and top-p filtering. Probabilities are computed in float64
 * over the surviving candidates only, sorted by descending logit (ties by id, for determinism).
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  if (!(params.temperature > 0)) throw new RangeError(`temperature must be > 0 for sampling, got ${params.temperature} (use greedy)`);
  // Candidates: indices with finite logits, sorted by logit descending. With top-k, a partial pass first
  // keeps the array short (V can be 150k).
  let candidates: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) candidates.push(i);
  if (candidates.length === 0) throw new RangeError('every token is masked: nothing to sample');
  const byLogit = (a: number, b: number): number => logits[b] - logits[a] || a - b;
  if (params.topK > 0 && params.topK < candidates.length) {
    candidates = topKIndices(logits, candidates, params.topK);
  }
  candidates.sort(byLogit);
  const scaled = candidates.map((i) => logits[i] / params.temperature);
  const max = scaled[0];
  const weights = scaled.map((l) => Math.exp(l - max));
  const total = weights.reduce((a, b) => a + b, 0);
  let keep = candidates.length;
  if (params.topP < 1) {
    // HF keeps tokens until the cumulative probability first reaches top_p (at least one token).
    let cumulative = 0;
    for (let i = 0; i < candidates.length; i++) {
      cumulative += weights[i] / total;
      if (cumulative >= params.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  const keptTotal = weights.slice(0, keep).reduce((a, b) => a + b, 0);
  let u = rng() * keptTotal;
  for (let i = 0; i < keep; i++) {
    u -= weights[i];
    if (u < 0) return candidates[i];
  }
  return candidates[keep - 1];
}

/** The k indices of `candidates` with the largest logits (ties keep all equal to the k-th, like HF). */
function topKIndices(logits: Float32Array, candidates: number[], k: number): number[] {
  const values = Float32Array.from(candidates, (i) => logits[i]).sort();
  const threshold = values[values.length - k];
  return candidates.filter((i) => logits[i] >= threshold);
}
