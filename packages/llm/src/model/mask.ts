/**
 * Batching helpers computed on the host: left padding, position ids under padding, and the additive
 * attention bias (causal + padding + optional sliding window) shared by every layer of one call.
 */

/** Additive bias for masked attention scores. Finite (not -Inf) so fully masked pad rows stay NaN-free. */
export const MASKED = -1e9;

/** Left-pad token sequences to one length. mask[b][t] = 1 for real tokens, 0 for padding. */
export function padBatch(seqs: readonly (readonly number[])[], padId: number): { ids: number[][]; mask: number[][] } {
  if (seqs.length === 0) throw new RangeError('padBatch: no sequences');
  const length = Math.max(...seqs.map((s) => s.length));
  const ids: number[][] = [];
  const mask: number[][] = [];
  for (const seq of seqs) {
    const pad = length - seq.length;
    ids.push([...new Array<number>(pad).fill(padId), ...seq]);
    mask.push([...new Array<number>(pad).fill(0), ...new Array<number>(seq.length).fill(1)]);
  }
  return { ids, mask };
}

/**
 * Position ids like HF generate: cumsum(mask) - 1 over the whole row (cache + new tokens); padded slots get
 * position 1 (their value does not matter, they are masked). Returns the positions of the last `newTokens`
 * slots, flattened [batch * newTokens].
 */
export function positionIds(mask: readonly (readonly number[])[], newTokens: number): Int32Array {
  const batch = mask.length;
  const out = new Int32Array(batch * newTokens);
  for (let b = 0; b < batch; b++) {
    const row = mask[b];
    const start = row.length - newTokens;
    let count = 0;
    for (let s = 0; s < row.length; s++) {
      if (row[s] !== 0) count++;
      if (s >= start) out[b * newTokens + (s - start)] = row[s] !== 0 ? count - 1 : 1;
    }
  }
  return out;
}

/**
 * Attention bias [batch, newTokens, totalLen] (flattened) for queries at the last `newTokens` slots of
 * each row attending to all `totalLen` slots: 0 where allowed, MASKED where the key is padding, in the
 * future, or (sliding window) at least `window` slots back.
 */
export function attentionBias(mask: readonly (readonly number[])[], newTokens: number, window: number | null): Float32Array {
  const batch = mask.length;
  const total = mask[0].length;
  const bias = new Float32Array(batch * newTokens * total);
  for (let b = 0; b < batch; b++) {
    const row = mask[b];
    if (row.length !== total) throw new RangeError(`attention mask rows differ in length (${row.length} vs ${total})`);
    for (let q = 0; q < newTokens; q++) {
      const qSlot = total - newTokens + q;
      const base = (b * newTokens + q) * total;
      for (let k = 0; k < total; k++) {
        const allowed = row[k] !== 0 && k <= qSlot && (window === null || qSlot - k < window);
        if (!allowed) bias[base + k] = MASKED;
      }
    }
  }
  return bias;
}
