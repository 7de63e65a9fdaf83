/**
 * The device top-k fast path of sampling: the step's forward also returns each row's K' largest logits and
 * their ids (TensorFlow's TopKV2 in the graph, tf.topk eagerly), and only those [rows, K'] leave the
 * device, instead of the [rows, V] logits the host sampler reads (at 96 rows of SmolLM2 the host top-k
 * and download took ~55 of a ~250 ms step; tools/measure/decode-step-time.ts).
 *
 * The fast path must pick exactly the token the host path (logits-processors.ts: min-new-tokens, then
 * temperature, top-k with ties at the k-th value kept, top-p) picks for the same rng. It does whenever it
 * can prove that the candidates it fetched contain every token the host path keeps:
 *  - K' = k + (stop tokens) + CANDIDATE_MARGIN, so k candidates remain after min-new-tokens removes stop ids;
 *  - every token not fetched has a logit ≤ the smallest fetched one (`floor`); when floor < the k-th
 *    remaining logit, no unfetched token reaches the host threshold, and the fetched ones ≥ it are exactly
 *    the host's kept set (ties at the k-th value included);
 *  - otherwise (floor ties the k-th value, too few remaining, or a row whose logits are not all finite —
 *    the device also returns each row's sum, which is NaN or infinite exactly then) the row returns null
 *    and the caller samples it from its full logits on the host.
 * Candidates are re-sorted here by (logit desc, id asc), the host's order, whatever order the device used.
 *
 * How the device finds a row's K' largest logits (candidateBlock; graph-ops.ts topCandidates and
 * eagerTopCandidates below): a top-k over all V logits (TensorFlow's TopKV2: ~17 ms of CPU per step at
 * 96 × 49,152, single-threaded) is replaced by a top-k over blocks. The row, padded with -Infinity to a
 * multiple of the block size B, is cut into blocks; the K' blocks with the largest maxima are gathered
 * and the K' largest of their K'·B logits are the candidates. Why nothing larger is missed: a block left
 * out has a maximum ≤ m, the smallest maximum taken; the K' blocks taken hold K' distinct logits ≥ m, so
 * the K'-th candidate (the floor above) is ≥ m ≥ anything left out. That is all the rule above needs
 * (which of several equal logits is fetched does not matter). With K' > V / B blocks, the plain top-k runs.
 */
import { tf } from '../backend.ts';

/** A step's top logits per row. */
export interface TokenCandidates {
  /** [b, K'] largest first. */
  values: tf.Tensor2D;
  /** [b, K'] int32 token ids. */
  indices: tf.Tensor2D;
  /** [b, 1] each row's sum over all V logits (not finite exactly when some logit is not). */
  rowSums: tf.Tensor2D;
}

/**
 * The block size for a vocabulary: the power of two nearest sqrt(V / 64), which about minimises the logits
 * the two top-k passes read (V / B block maxima + K'·B gathered logits) for K' ≈ 64 (top-k 50 + stop
 * tokens + margin). SmolLM2 (V = 49,152): 32; Qwen2.5 (151,936): 64.
 */
export function candidateBlock(vocab: number): number {
  return 2 ** Math.max(0, Math.round(Math.log2(Math.sqrt(vocab / 64))));
}

/** Eagerly (any backend), what the graph's topCandidates computes: each row's `count` largest logits, ids, sum. */
export function eagerTopCandidates(logits: tf.Tensor2D, count: number): TokenCandidates {
  return tf.tidy(() => {
    const [b, vocab] = logits.shape;
    const block = candidateBlock(vocab);
    const blocks = Math.ceil(vocab / block);
    const rowSums = tf.sum(logits, 1, true) as tf.Tensor2D;
    if (count > blocks || block === 1) {
      const top = tf.topk(logits, count, true);
      return { values: top.values as tf.Tensor2D, indices: top.indices as tf.Tensor2D, rowSums };
    }
    const padded = blocks * block === vocab ? logits : tf.pad(logits, [[0, 0], [0, blocks * block - vocab]], -Infinity);
    // Gathers over flattened rows (row offsets added): tfjs-wasm's gather with batchDims returns wrong rows.
    const rowStart = (stride: number) => tf.mul(tf.reshape(tf.range(0, b, 1, 'int32'), [b, 1]), tf.scalar(stride, 'int32'));
    const bestBlocks = tf.topk(tf.max(tf.reshape(padded, [b, blocks, block]), 2), count, true).indices; // [b, K']
    const gathered = tf.reshape(tf.gather(tf.reshape(padded, [b * blocks, block]), tf.add(bestBlocks, rowStart(blocks))), [b, count * block]);
    const top = tf.topk(gathered, count, true); // positions in the gathered K'·B
    const blockSize = tf.scalar(block, 'int32');
    const blockOf = tf.gather(tf.reshape(bestBlocks, [-1]), tf.add(tf.floorDiv(top.indices, blockSize), rowStart(count)));
    const indices = tf.add(tf.mul(blockOf, blockSize), tf.mod(top.indices, blockSize)) as tf.Tensor2D;
    return { values: top.values as tf.Tensor2D, indices, rowSums };
  }) as unknown as TokenCandidates;
}
/** Candidates fetched beyond k + stop tokens, so that a tie at the k-th value rarely forces the host path. */
export const CANDIDATE_MARGIN = 8;

/** Set to 0 to sample every row on the host from its full logits (A/B runs; the reference path). */
export const DEVICE_TOP_K_ENV = 'DRO_DEVICE_TOP_K';

/** How many rows took each path since the process started (measurement scripts and tests read it). */
export const candidatePathCounts = { device: 0, host: 0 };

/**
 * K' for a request: the candidates per row to fetch from the device, or 0 for the host path (top-k off,
 * K' not below the vocabulary, or the fast path switched off).
 */
export function candidateCount(params: { topK: number; greedy: boolean }, stopTokenIds: readonly number[], vocab: number): number {
  if (process.env[DEVICE_TOP_K_ENV] === '0') return 0;
  const k = params.greedy ? 1 : params.topK;
  if (k <= 0) return 0;
  const count = k + new Set(stopTokenIds).size + CANDIDATE_MARGIN;
  return count < vocab ? count : 0;
}

/**
 * One row's top-k survivors from its fetched candidates — ids and float32 logits sorted like the host
 * sampler's — or null when they cannot be proven to be the host's (the caller then uses the full row).
 * `suppressed`: stop ids the host path sets to -Infinity at this step (min-new-tokens), else empty.
 */
export function topKFromCandidates(values: ArrayLike<number>, indices: ArrayLike<number>, rowSum: number, k: number, suppressed: readonly number[]): { ids: number[]; logits: number[] } | null {
  // A NaN or infinite logit anywhere in the row: how the device's top-k ordered it is not defined.
  if (!Number.isFinite(rowSum)) return null;
  const n = values.length;
  let floor = Infinity;
  const remaining: number[] = []; // positions into values/indices
  for (let j = 0; j < n; j++) {
    const v = values[j];
    if (v !== v || v === -Infinity) return null; // NaN or masked: the host path decides
    if (v < floor) floor = v;
    if (!suppressed.includes(indices[j])) remaining.push(j);
  }
  if (remaining.length <= k) return null; // the host path also needs more than k finite logits to apply top-k
  remaining.sort((a, b) => values[b] - values[a] || indices[a] - indices[b]);
  const kth = values[remaining[k - 1]];
  if (!(floor < kth)) return null; // an unfetched token may tie the k-th value
  const ids: number[] = [];
  const logits: number[] = [];
  for (const j of remaining) {
    if (values[j] < kth) break;
    ids.push(indices[j]);
    logits.push(values[j]);
  }
  return { ids, logits };
}
