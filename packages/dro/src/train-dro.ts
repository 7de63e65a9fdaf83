/**
 * The DRO training loop: optimise the soft prompt (initialised from the basic prompt's token embeddings)
 * so that, in the PCA space of final hidden states, harmful queries move toward refusal and harmless ones
 * away from it, relative to the same queries under the basic text prompt.
 *
 * Batches follow seeded shuffles per epoch; each batch may be split into micro-batches whose gradients
 * are accumulated (same mathematics, bounded memory), then clipped and applied with AdamW.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BadInputError, type CurvePoint } from '@dro/artifacts';
import { registerAllGradients } from '@dro/llm';
import { AdamW, accumulateGradient } from './adamw.ts';
import { boundaryLogits, directionTensors, disposeDirections, droLoss, type DirectionArrays, type LossWeights } from './loss.ts';
import { leftPad, spliceSoftPrompt, type PromptedInput } from './soft-prompt.ts';
import { seededShuffle } from './shuffle.ts';

/** What training needs of the model (the runtime's ChatModel satisfies it). */
export interface TrainableModel {
  readonly padId: number;
  embed(ids: number[][]): tf.Tensor3D;
  forward(input: { inputIds?: number[][]; inputsEmbeds?: tf.Tensor3D; attentionMask?: number[][]; logitsFor?: 'all' | 'last' | 'none' }): {
    logits: tf.Tensor3D;
    lastHidden: tf.Tensor3D;
  };
}

export interface DroExample extends PromptedInput {
  queryId: string;
  /** y: 0 = harmful, 1 = harmless. */
  label: 0 | 1;
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

export type { CurvePoint } from '@dro/artifacts';

/** Per training query: boundary logits under the basic prompt and under the trained soft prompt. */
export interface LogitShift {
  queryId: string;
  label: 0 | 1;
  baseRefusal: number;
  softRefusal: number;
  baseHarmfulness: number;
  softHarmfulness: number;
}

export interface DroTrainingResult {
  /** [n, d] row-major. */
  softPrompt: Float32Array;
  /** The AdamW step size used (lr, scaled by the initial prompt's RMS when lrUnit is "prompt-rms"). */
  effectiveLr: number;
  curve: CurvePoint[];
  shifts: LogitShift[];
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

function lastHidden2d(lastHidden: tf.Tensor3D): tf.Tensor2D {
  const [b, t, d] = lastHidden.shape;
  return tf.reshape(tf.slice(lastHidden, [0, t - 1, 0], [b, 1, d]), [b, d]) as tf.Tensor2D;
}

/** Final hidden states at the last input position under the basic text prompt: [N, d], in chunks. */
export function baseHiddenStates(model: TrainableModel, examples: PromptedInput[], chunk: number): tf.Tensor2D {
  const parts: tf.Tensor2D[] = [];
  for (let i = 0; i < examples.length; i += chunk) {
    const { ids, mask } = leftPad(
      examples.slice(i, i + chunk).map((x) => x.ids),
      model.padId,
    );
    parts.push(
      tf.tidy(() => {
        const out = model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'none' });
        return lastHidden2d(out.lastHidden);
      }),
    );
  }
  const all = tf.concat(parts, 0) as tf.Tensor2D;
  tf.dispose(parts);
  return all;
}

/** Final hidden states [B, d] with the soft prompt spliced in (differentiable w.r.t. `soft`). */
export function softHiddenStates(model: TrainableModel, examples: PromptedInput[], soft: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const { embeds, mask } = spliceSoftPrompt(model, examples, soft);
    const out = model.forward({ inputsEmbeds: embeds, attentionMask: mask, logitsFor: 'none' });
    return lastHidden2d(out.lastHidden);
  });
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

let variableCounter = 0;

export async function trainDro(
  model: TrainableModel,
  examples: DroExample[],
  directions: DirectionArrays,
  init: { values: Float32Array; nTokens: number },
  weights: LossWeights,
  opt: OptimiserOptions,
  hooks: TrainingHooks = {},
): Promise<DroTrainingResult> {
  await registerAllGradients(); // tfjs-core ships its gradient functions separately
  const d = directions.d;
  const dirs = directionTensors(directions);
  const initTensor = tf.tensor2d(init.values, [init.nTokens, d]);
  const soft = tf.variable(initTensor, true, `soft_prompt_${++variableCounter}`); // [n, d]
  initTensor.dispose(); // the variable holds its own reference to the data
  const effectiveLr = effectiveLearningRate(opt, init.values);
  const optimiser = new AdamW({ lr: effectiveLr, weightDecay: opt.weightDecay, maxGradNorm: opt.maxGradNorm });
  // Base quantities, computed once: h_b [N, d] and its boundary logits [N].
  const baseHidden = baseHiddenStates(model, examples, opt.microBatchSize);
  const baseLogits = boundaryLogits(baseHidden, dirs);
  const labels = tf.tensor1d(examples.map((x) => x.label), 'float32');
  const curve: CurvePoint[] = [];
  try {
    const stepsPerEpoch = Math.ceil(examples.length / opt.batchSize);
    const totalSteps = Math.min(stepsPerEpoch * opt.epochs, opt.maxSteps ?? Infinity);
    let step = 0;
    for (let epoch = 0; epoch < opt.epochs && step < totalSteps; epoch++) {
      const order = seededShuffle(examples.length, opt.seed + epoch);
      for (let start = 0; start < order.length && step < totalSteps; start += opt.batchSize) {
        await yieldToEventLoop();
        if (hooks.signal?.aborted) throw new AbortedError('DRO training cancelled');
        const batch = order.slice(start, start + opt.batchSize);
        const sums: Record<string, number> = { total: 0, refusal: 0, harmfulness: 0, norm: 0 };
        let grad: tf.Tensor | null = null;
        for (let m = 0; m < batch.length; m += opt.microBatchSize) {
          const micro = batch.slice(m, m + opt.microBatchSize);
          const share = micro.length / batch.length; // the batch loss is the mean over its examples
          const idx = tf.tensor1d(micro, 'int32');
          const { value, grads, terms } = tf.tidy(() => {
            const base = {
              hidden: tf.gather(baseHidden, idx) as tf.Tensor2D,
              refusalLogit: tf.gather(baseLogits.refusal, idx) as tf.Tensor1D,
              harmfulnessLogit: tf.gather(baseLogits.harmfulness, idx) as tf.Tensor1D,
              labels: tf.gather(labels, idx) as tf.Tensor1D,
            };
            let termValues: Record<string, number> = {};
            const r = tf.variableGrads(() => {
              const h = softHiddenStates(model, micro.map((i) => examples[i]!), soft);
              const l = droLoss(h, base, dirs, weights);
              termValues = { refusal: l.refusal.dataSync()[0]!, harmfulness: l.harmfulness.dataSync()[0]!, norm: l.norm.dataSync()[0]! };
              return tf.mul(l.total, share) as tf.Scalar;
            }, [soft]);
            return { value: r.value, grads: r.grads, terms: termValues };
          });
          idx.dispose();
          sums.total! += value.dataSync()[0]!;
          value.dispose();
          for (const [k, v] of Object.entries(terms)) sums[k]! += v * share;
          const g = grads[soft.name]!;
          grad = accumulateGradient(grad, g);
        }
        const gradNorm = optimiser.step(soft, grad!);
        grad!.dispose();
        step += 1;
        curve.push({ step, epoch: epoch + 1, terms: { ...sums, grad_norm: gradNorm } });
        hooks.progress?.(step, totalSteps, `epoch ${epoch + 1}/${opt.epochs} step ${step}/${totalSteps} loss ${sums.total!.toFixed(4)}`);
      }
    }
    // Where each training query ends up: boundary logits under the trained soft prompt vs the basic prompt.
    const shifts: LogitShift[] = [];
    const baseR = baseLogits.refusal.dataSync();
    const baseA = baseLogits.harmfulness.dataSync();
    for (let i = 0; i < examples.length; i += opt.microBatchSize) {
      const chunk = examples.slice(i, i + opt.microBatchSize);
      const [r, a] = tf.tidy(() => {
        const lg = boundaryLogits(softHiddenStates(model, chunk, soft), dirs);
        return [lg.refusal.dataSync(), lg.harmfulness.dataSync()];
      });
      chunk.forEach((x, j) =>
        shifts.push({
          queryId: x.queryId,
          label: x.label,
          baseRefusal: baseR[i + j]!,
          softRefusal: r![j]!,
          baseHarmfulness: baseA[i + j]!,
          softHarmfulness: a![j]!,
        }),
      );
    }
    return { softPrompt: Float32Array.from(soft.dataSync()), effectiveLr, curve, shifts };
  } catch (err) {
    throw explainOutOfMemory(err, opt.microBatchSize);
  } finally {
    optimiser.dispose();
    tf.dispose([soft, baseHidden, baseLogits.refusal, baseLogits.harmfulness, labels]);
    disposeDirections(dirs);
  }
}
