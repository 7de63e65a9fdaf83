/**
 * AdamW with decoupled weight decay and global gradient-norm clipping, with PyTorch's semantics
 * (torch.optim.AdamW, torch.nn.utils.clip_grad_norm_), for one parameter tensor — the soft prompt.
 * tfjs's own AdamOptimizer has no decoupled weight decay, hence this small implementation.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamWOptions {
  lr: number;
  weightDecay: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Clip the gradient to this global L2 norm before the update (null: no clipping). */
  maxGradNorm: number | null;
}

export class AdamW {
  private m: tf.Tensor | null = null;
  private v: tf.Tensor | null = null;
  private t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;

  constructor(private readonly o: AdamWOptions) {
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
  }

  /** One update of `param` in place from `grad`; returns the gradient's norm before clipping. */
  step(param: tf.Variable, grad: tf.Tensor): number {
    const gradNorm = tf.tidy(() => tf.norm(grad).dataSync()[0]!);
    this.t += 1;
    const { lr, weightDecay } = this.o;
    const [m, v] = tf.tidy(() => {
      // clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
      const clipCoef = this.o.maxGradNorm === null ? 1 : Math.min(1, this.o.maxGradNorm / (gradNorm + 1e-6));
      const g = clipCoef < 1 ? tf.mul(grad, clipCoef) : grad;
      const m = this.m === null ? tf.mul(g, 1 - this.beta1) : tf.add(tf.mul(this.m, this.beta1), tf.mul(g, 1 - this.beta1));
      const v = this.v === null ? tf.mul(tf.square(g), 1 - this.beta2) : tf.add(tf.mul(this.v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
      const mHat = tf.div(m, 1 - this.beta1 ** this.t);
      const vHat = tf.div(v, 1 - this.beta2 ** this.t);
      // Decoupled decay first (p ← p·(1 − lr·wd)), then the Adam step, as torch does.
      const decayed = tf.mul(param, 1 - lr * weightDecay);
      param.assign(tf.sub(decayed, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), this.eps)), lr)));
      return [m, v];
    });
    tf.dispose([this.m, this.v].filter((x): x is tf.Tensor => x !== null));
    this.m = m!;
    this.v = v!;
    return gradNorm;
  }

  dispose(): void {
    tf.dispose([this.m, this.v].filter((x): x is tf.Tensor => x !== null));
    this.m = null;
    this.v = null;
  }
}

/** Running sum of micro-batch gradients: takes ownership of both tensors and returns the new sum. */
export function accumulateGradient(sum: tf.Tensor | null, g: tf.Tensor): tf.Tensor {
  if (sum === null) return g;
  const next = tf.add(sum, g);
  tf.dispose([sum, g]);
  return next;
}
