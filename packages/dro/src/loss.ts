/**
 * The DRO objective (Zheng et al., ICML 2024, eq. 4–6), on final hidden states.
 *
 * With h the hidden state (last input position, after the final norm) under the soft prompt, h_b the same
 * query's hidden state under the basic text prompt (precomputed once), PCA mean μ and components V_k
 * ([k, d], orthonormal rows), z = V_k (h − μ):
 *   refusal logit      r(h) = w_r·z + b_r   (higher = more likely to comply)
 *   harmfulness logit  a(h) = w_a·z + b_a   (higher = judged more harmless)
 *   y = 0 for harmful queries, 1 for harmless ones.
 *   L = λ_r·BCE(r(h) − r(h_b), y) + λ_a·BCE(a(h) − a(h_b), y) + λ_n·mean_batch[(‖Δ‖² − ‖V_k Δ‖²)/(d − k)]
 * with Δ = h − h_b, BCE the logistic loss on logits, and paper weights λ = (1, 1e-2, 1e-3).
 *
 * So harmful queries are pushed toward refusal relative to the basic prompt and harmless ones away from
 * it, while the hidden state is kept from wandering outside the top-k PCA subspace.
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerAllGradients } from '@dro/llm';

// Training differentiates through the model: tfjs-core ships its gradient functions separately (as ESM
// that plain Node cannot load directly; @dro/llm knows how).
await registerAllGradients();

/** The PCA space and the two logistic boundaries, as tensors (constants during training). */
export interface DirectionTensors {
  /** PCA mean μ: [d]. */
  mean: tf.Tensor1D;
  /** Top-k components V_k: [k, d], orthonormal rows. */
  components: tf.Tensor2D;
  /** Refusal boundary weights w_r: [k] and bias b_r. */
  refusalW: tf.Tensor1D;
  refusalB: number;
  /** Harmfulness boundary weights w_a: [k] and bias b_a. */
  harmfulnessW: tf.Tensor1D;
  harmfulnessB: number;
}

/** Plain-data form of the directions artifact ("directions" safetensors: mean, components, refusal_w, …). */
export interface DirectionArrays {
  mean: Float32Array;
  components: Float32Array;
  k: number;
  d: number;
  refusalW: Float32Array;
  refusalB: number;
  harmfulnessW: Float32Array;
  harmfulnessB: number;
}

export function directionTensors(a: DirectionArrays): DirectionTensors {
  return {
    mean: tf.tensor1d(a.mean),
    components: tf.tensor2d(a.components, [a.k, a.d]),
    refusalW: tf.tensor1d(a.refusalW),
    refusalB: a.refusalB,
    harmfulnessW: tf.tensor1d(a.harmfulnessW),
    harmfulnessB: a.harmfulnessB,
  };
}

export function disposeDirections(t: DirectionTensors): void {
  tf.dispose([t.mean, t.components, t.refusalW, t.harmfulnessW]);
}

/** Which terms are on and how much each counts. A weight of 0 switches its term off (ablations). */
export interface LossWeights {
  refusal: number;
  harmfulness: number;
  norm: number;
}

export const PAPER_LOSS_WEIGHTS: Readonly<LossWeights> = { refusal: 1, harmfulness: 1e-2, norm: 1e-3 };

/** Coordinates in the PCA space: z = (h − μ) V_kᵀ. h: [B, d] → [B, k]. */
export function pcaCoordinates(h: tf.Tensor2D, dirs: DirectionTensors): tf.Tensor2D {
  return tf.tidy(() => tf.matMul(tf.sub(h, dirs.mean), dirs.components, false, true));
}

/** Refusal and harmfulness boundary logits of hidden states h: [B, d] → two [B] tensors. */
export function boundaryLogits(h: tf.Tensor2D, dirs: DirectionTensors): { refusal: tf.Tensor1D; harmfulness: tf.Tensor1D } {
  return tf.tidy(() => {
    const z = pcaCoordinates(h, dirs); // [B, k]
    const refusal = tf.add(tf.reshape(tf.matMul(z, tf.reshape(dirs.refusalW, [-1, 1])), [-1]), dirs.refusalB) as tf.Tensor1D;
    const harmfulness = tf.add(tf.reshape(tf.matMul(z, tf.reshape(dirs.harmfulnessW, [-1, 1])), [-1]), dirs.harmfulnessB) as tf.Tensor1D;
    return { refusal, harmfulness };
  });
}

/**
 * Mean binary cross-entropy on logits x: [B] against targets y: [B] in {0, 1}, in the overflow-safe form
 * max(x, 0) − x·y + log(1 + exp(−|x|)).
 */
export function bceWithLogits(x: tf.Tensor1D, y: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.add(tf.sub(tf.relu(x), tf.mul(x, y)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))))) as tf.Scalar);
}

/** What the loss needs of each training query besides h: computed once, under the basic text prompt. */
export interface BaseQuantities {
  /** h_b: [B, d]. */
  hidden: tf.Tensor2D;
  /** r(h_b), a(h_b): [B]. */
  refusalLogit: tf.Tensor1D;
  harmfulnessLogit: tf.Tensor1D;
  /** y: [B], 0 = harmful, 1 = harmless. */
  labels: tf.Tensor1D;
}

export interface DroLossTerms {
  /** Weighted sum of the enabled terms. */
  total: tf.Scalar;
  /** Unweighted terms (computed even when switched off, for the training curve). */
  refusal: tf.Scalar;
  harmfulness: tf.Scalar;
  norm: tf.Scalar;
}

/**
 * The DRO loss for hidden states h: [B, d] under the soft prompt. Switched-off terms (weight 0) are still
 * reported but do not enter `total`, so they contribute no gradient.
 */
export function droLoss(h: tf.Tensor2D, base: BaseQuantities, dirs: DirectionTensors, weights: LossWeights): DroLossTerms {
  return tf.tidy(() => {
    const d = h.shape[1];
    const k = dirs.components.shape[0];
    const { refusal: r, harmfulness: a } = boundaryLogits(h, dirs);
    const refusal = bceWithLogits(tf.sub(r, base.refusalLogit), base.labels);
    const harmfulness = bceWithLogits(tf.sub(a, base.harmfulnessLogit), base.labels);

    const delta = tf.sub(h, base.hidden); // [B, d]
    const inSubspace = tf.matMul(delta, dirs.components, false, true); // [B, k]
    const outside = tf.sub(tf.sum(tf.square(delta), 1), tf.sum(tf.square(inSubspace), 1)); // [B]
    const norm = tf.div(tf.mean(outside), d - k) as tf.Scalar;

    let total = tf.scalar(0);
    if (weights.refusal !== 0) total = tf.add(total, tf.mul(refusal, weights.refusal));
    if (weights.harmfulness !== 0) total = tf.add(total, tf.mul(harmfulness, weights.harmfulness));
    if (weights.norm !== 0) total = tf.add(total, tf.mul(norm, weights.norm));
    return { total: total as tf.Scalar, refusal, harmfulness, norm };
  });
}
