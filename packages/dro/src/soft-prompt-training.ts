/**
 * The one soft-prompt training loop, shared by DRO (train-dro.ts) and the prompt-tuning baseline
 * (prompt-tuning.ts): they differ only in their loss. The soft prompt starts from the basic prompt's token
 * embeddings; batches follow seeded shuffles per epoch; each batch may be split into micro-batches whose
 * gradients are accumulated (same mathematics, bounded memory), then clipped and applied with AdamW.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BadInputError, type CurvePoint } from '@dro/artifacts';
import { mulberry32, registerAllGradients } from '@dro/llm';
import { shuffledIndices } from '@dro/pipeline';
import { AdamW, accumulateGradient } from './adamw.ts';

export type { CurvePoint } from '@dro/artifacts';

/** What training needs of the model (the runtime's ChatModel satisfies it). */
export interface TrainableModel {
  readonly padId: number;
  embed(ids: number[][]): tf.Tensor3D;
  forward(input: { inputIds?: number[][]; inputsEmbeds?: tf.Tensor3D; attentionMask?: number[][]; logitsFor?: 'all' | 'last' | 'none' }): {
    logits: tf.Tensor3D;
    lastHidden: tf.Tensor3D;
  };
}

/**
 * How `lr` is read. "absolute": AdamW's step size, as in the paper. "prompt-rms": in units of the initial
 * soft prompt's root-mean-square value, so the step is the same fraction of the embedding scale on every
 * model. Adam moves each coordinate by ≈ lr per step whatever the gradient's scale, so an absolute lr means
 * very different things on different models: token embeddings have RMS 0.136 in SmolLM2-135M and 0.0173
 * in Qwen2.5-0.5B (measured on the GGUFs), and the quick preset's former lr 1e-2 — about 7 % of SmolLM2's
 * scale per step — was 58 % of Qwen's and pushed its harmful queries toward compliance.
 */
export const LR_UNITS = ['absolute', 'prompt-rms'] as const;
export type LrUnit = (typeof LR_UNITS)[number];

export interface OptimiserOptions {
  lr: number;
  lrUnit: LrUnit;
  weightDecay: number;
  maxGradNorm: number | null;
  batchSize: number;
  /** Examples per forward/backward pass; gradients of a batch's micro-batches are accumulated. */
  microBatchSize: number;
  epochs: number;
  /** Stop after this many optimiser steps (quick runs); null = all epochs. */
  maxSteps: number | null;
  seed: number;
}

export interface TrainingHooks {
  progress?(done: number, total: number, message: string): void;
  signal?: AbortSignal;
}

export class AbortedError extends Error {
  override name = 'AbortError';
}

/**
 * The wasm backend has a fixed memory ceiling; a micro-batch too large for it surfaces as a wasm trap.
 * Say what to change instead (and as a BadInputError: retrying the same params cannot succeed).
 */
export function explainOutOfMemory(err: unknown, microBatchSize: number): unknown {
  const message = (err as Error)?.message ?? '';
  if (!/memory access out of bounds|out of memory|Cannot enlarge memory/i.test(message)) return err;
  return new BadInputError(
    `training ran out of tfjs backend memory (${message}) with microBatchSize ${microBatchSize}; ` +
      `lower microBatchSize (e.g. ${Math.max(1, Math.floor(microBatchSize / 2))}) — gradients are accumulated, so results do not change`,
    { cause: err },
  );
}

/** Root mean square of the values (the soft prompt's scale). */
export function rootMeanSquare(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v * v;
  return values.length ? Math.sqrt(sum / values.length) : 0;
}

/** AdamW's step size for `opt` when the soft prompt starts at `init`. */
export function effectiveLearningRate(opt: Pick<OptimiserOptions, 'lr' | 'lrUnit'>, init: Float32Array): number {
  return opt.lrUnit === 'prompt-rms' ? opt.lr * rootMeanSquare(init) : opt.lr;
}

/** Let timers and signal handlers run between steps (SIGINT → ctx.signal, heartbeats). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A micro-batch's part of its batch's loss: summed over the batch's micro-batches, the batch's loss. */
export interface MicroBatchLoss {
  /** The scalar differentiated w.r.t. the soft prompt. */
  total: tf.Scalar;
  /** This micro-batch's part of each named term (the curve records their sums per step). */
  terms: Record<string, number>;
}

/** What a training method brings to the loop: its loss. */
export interface SoftPromptObjective {
  /** In progress messages and the cancellation error ("DRO training", "prompt tuning"). */
  name: string;
  /** The loss terms the curve records per step, besides `total` and `grad_norm`. */
  terms: readonly string[];
  /**
   * The loss of a batch (indices into the training examples), one micro-batch (a slice of the batch) at a
   * time; called inside tf.tidy and tf.variableGrads.
   */
  batchLoss(batch: readonly number[]): (micro: readonly number[], soft: tf.Variable<tf.Rank.R2>) => MicroBatchLoss;
}

export interface SoftPromptTrainingResult {
  /** [n, d] row-major. */
  softPrompt: Float32Array;
  /** The AdamW step size used (lr, scaled by the initial prompt's RMS when lrUnit is "prompt-rms"). */
  effectiveLr: number;
  curve: CurvePoint[];
}

let variableCounter = 0;

/** Optimise a soft prompt of shape [nTokens, d] from `init` over `examples` training examples. */
export async function trainSoftPrompt(
  examples: number,
  init: { values: Float32Array; nTokens: number; d: number },
  objective: SoftPromptObjective,
  opt: OptimiserOptions,
  hooks: TrainingHooks = {},
): Promise<SoftPromptTrainingResult> {
  await registerAllGradients(); // tfjs-core ships its gradient functions separately
  const initTensor = tf.tensor2d(init.values, [init.nTokens, init.d]);
  const soft = tf.variable(initTensor, true, `soft_prompt_${++variableCounter}`); // [n, d]
  initTensor.dispose(); // the variable holds its own reference to the data
  const effectiveLr = effectiveLearningRate(opt, init.values);
  const optimiser = new AdamW({ lr: effectiveLr, weightDecay: opt.weightDecay, maxGradNorm: opt.maxGradNorm });
  const curve: CurvePoint[] = [];
  try {
    const totalSteps = Math.min(Math.ceil(examples / opt.batchSize) * opt.epochs, opt.maxSteps ?? Infinity);
    let step = 0;
    for (let epoch = 0; epoch < opt.epochs && step < totalSteps; epoch++) {
      const order = shuffledIndices(examples, mulberry32(opt.seed + epoch));
      for (let start = 0; start < order.length && step < totalSteps; start += opt.batchSize) {
        await yieldToEventLoop();
        if (hooks.signal?.aborted) throw new AbortedError(`${objective.name} cancelled`);
        const batch = order.slice(start, start + opt.batchSize);
        const microLoss = objective.batchLoss(batch);
        const sums: Record<string, number> = { total: 0, ...Object.fromEntries(objective.terms.map((t) => [t, 0])) };
        let grad: tf.Tensor | null = null;
        for (let m = 0; m < batch.length; m += opt.microBatchSize) {
          const micro = batch.slice(m, m + opt.microBatchSize);
          const { value, grads, terms } = tf.tidy(() => {
            let parts: Record<string, number> = {};
            const r = tf.variableGrads(() => {
              const l = microLoss(micro, soft);
              parts = l.terms;
              return l.total;
            }, [soft]);
            return { value: r.value, grads: r.grads, terms: parts };
          });
          sums.total! += value.dataSync()[0]!;
          value.dispose();
          for (const [k, v] of Object.entries(terms)) sums[k]! += v;
          grad = accumulateGradient(grad, grads[soft.name]!);
        }
        const gradNorm = optimiser.step(soft, grad!);
        grad!.dispose();
        step += 1;
        curve.push({ step, epoch: epoch + 1, terms: { ...sums, grad_norm: gradNorm } });
        hooks.progress?.(step, totalSteps, `${objective.name} epoch ${epoch + 1}/${opt.epochs} step ${step}/${totalSteps} loss ${sums.total!.toFixed(4)}`);
      }
    }
    return { softPrompt: Float32Array.from(soft.dataSync()), effectiveLr, curve };
  } catch (err) {
    throw explainOutOfMemory(err, opt.microBatchSize);
  } finally {
    optimiser.dispose();
    soft.dispose();
  }
}
