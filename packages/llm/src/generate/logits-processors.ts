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
 *
 * Cost: the vocabulary is never sorted whole (that took ~24 ms per row at V = 49k and dominated the
 * sampling stages). Top-k finds the k-th largest logit with a size-k heap in one pass; top-p without
 * top-k sorts only the tokens within 30 nats (at temperature 1) of the best one when those already hold
 * the top-p mass, falling back to the full sort when they do not.
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  if (!(params.temperature > 0)) throw new RangeError(`temperature must be > 0 for sampling, got ${params.temperature} (use greedy)`);
  const { sorted, total } = sortedCandidates(logits, params);
  return drawCandidate(sorted, sorted.map((i) => logits[i]), total, params, rng);
}

/**
 * Top-p filtering and the draw over candidates already filtered by top-k and sorted by descending logit
 * (ties by id): `ids[j]` has logit `logits[j]` (float32 values). `total` is the softmax normaliser over all
 * candidates when `ids` is only a prefix of them, else null (the list's own sum). The one home of this
 * math: the host sampler above and the device top-k fast path (token-candidates.ts) both draw here, so the
 * same candidates and rng give the same token.
 */
export function drawCandidate(ids: readonly number[], logits: readonly number[], total: number | null, params: SamplingParams, rng: Rng): number {
  const max = logits[0] / params.temperature;
  const weights = logits.map((l) => Math.exp(l / params.temperature - max));
  const mass = total ?? weights.reduce((a, b) => a + b, 0);
  let keep = ids.length;
  if (params.topP < 1) {
    // HF keeps tokens until the cumulative probability first reaches top_p (at least one token).
    let cumulative = 0;
    for (let i = 0; i < ids.length; i++) {
      cumulative += weights[i] / mass;
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
    if (u < 0) return ids[i];
  }
  return ids[keep - 1];
}

/** Buckets (1 nat wide, after temperature) of the top-p pre-pass; tokens further below the best share the last. */
const TOP_P_BUCKETS = 64;

/**
 * The candidate ids sorted by descending logit (ties by id), and — when the list is a prefix of all
 * candidates (top-p shortcut) — the softmax normaliser over all of them; otherwise total is null and the
 * caller sums the list's weights.
 */
function sortedCandidates(logits: Float32Array, params: SamplingParams): { sorted: number[]; total: number | null } {
  const byLogit = (a: number, b: number): number => logits[b] - logits[a] || a - b;
  let finite = 0;
  let best = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const l = logits[i];
    if (l === -Infinity) continue;
    finite++;
    if (l > best) best = l;
  }
  if (finite === 0) throw new RangeError('every token is masked: nothing to sample');
  if (params.topK > 0 && params.topK < finite) {
    const threshold = kthLargest(logits, params.topK);
    const kept: number[] = [];
    for (let i = 0; i < logits.length; i++) if (logits[i] >= threshold) kept.push(i); // ties kept, like HF
    return { sorted: kept.sort(byLogit), total: null };
  }
  if (params.topP < 1 && Number.isFinite(best)) {
    // One pass: the normaliser and the mass per 1-nat bucket below the best token. The top-p prefix lies
    // within the first buckets holding topP of the mass; one more bucket is taken as a margin for rounding.
    const t = params.temperature;
    const bucketMass = new Float64Array(TOP_P_BUCKETS);
    let total = 0;
    for (let i = 0; i < logits.length; i++) {
      if (logits[i] === -Infinity) continue;
      const z = logits[i] / t - best / t;
      const w = Math.exp(z);
      total += w;
      bucketMass[Math.min(TOP_P_BUCKETS - 1, Math.floor(-z))] += w;
    }
    let cumulative = 0;
    let buckets = 0;
    while (buckets < TOP_P_BUCKETS - 2 && cumulative < params.topP * total) cumulative += bucketMass[buckets++];
    if (cumulative >= params.topP * total) {
      const depth = buckets + 1; // nats below the best
      const window: number[] = [];
      for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity && logits[i] / t - best / t >= -depth) window.push(i);
      return { sorted: window.sort(byLogit), total };
    }
  }
  const all: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) all.push(i);
  return { sorted: all.sort(byLogit), total: null };
}

/** The k-th largest non-NaN value of `values` (counting repeats), by a size-k min-heap in one pass. */
function kthLargest(values: Float32Array, k: number): number {
  const heap = new Float64Array(k);
  let size = 0;
  const siftDown = (from: number): void => {
    let i = from;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) return;
      const child = left + 1 < size && heap[left + 1] < heap[left] ? left + 1 : left;
      if (heap[child] >= heap[i]) return;
      [heap[i], heap[child]] = [heap[child], heap[i]];
      i = child;
    }
  };
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    if (v !== v || v === -Infinity) continue; // NaN, masked
    if (size < k) {
      let i = size++;
      heap[i] = v;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent] <= heap[i]) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else if (v > heap[0]) {
      heap[0] = v;
      siftDown(0);
    }
  }
  return heap[0];
}
