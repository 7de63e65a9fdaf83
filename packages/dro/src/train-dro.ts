/**
 * DRO's objective: optimise the soft prompt so that, in the PCA space of final hidden states, harmful queries
 * move toward refusal and harmless ones away from it, relative to the same queries under the basic text
 * prompt. The loop itself (shuffles, micro-batches, AdamW) is soft-prompt-training.ts, shared with the
 * prompt-tuning baseline.
 */
import * as tf from '@tensorflow/tfjs-core';
import { boundaryLogits, directionTensors, disposeDirections, droLoss, type DirectionArrays, type LossWeights } from './loss.ts';
import { leftPad, spliceSoftPrompt, type PromptedInput } from './soft-prompt.ts';
import { explainOutOfMemory, trainSoftPrompt, type CurvePoint, type OptimiserOptions, type TrainableModel, type TrainingHooks } from './soft-prompt-training.ts';

export interface DroExample extends PromptedInput {
  queryId: string;
  /** y: 0 = harmful, 1 = harmless. */
  label: 0 | 1;
}

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

export async function trainDro(
  model: TrainableModel,
  examples: DroExample[],
  directions: DirectionArrays,
  init: { values: Float32Array; nTokens: number },
  weights: LossWeights,
  opt: OptimiserOptions,
  hooks: TrainingHooks = {},
): Promise<DroTrainingResult> {
  const dirs = directionTensors(directions);
  // Base quantities, computed once: h_b [N, d] and its boundary logits [N].
  const baseHidden = baseHiddenStates(model, examples, opt.microBatchSize);
  const baseLogits = boundaryLogits(baseHidden, dirs);
  const labels = tf.tensor1d(examples.map((x) => x.label), 'float32');
  try {
    const trained = await trainSoftPrompt(
      examples.length,
      { ...init, d: directions.d },
      {
        name: 'DRO training',
        terms: ['refusal', 'harmfulness', 'norm'],
        batchLoss: (batch) => (micro, soft) => {
          const share = micro.length / batch.length; // the batch loss is the mean over its examples
          const idx = tf.tensor1d(micro as number[], 'int32');
          const base = {
            hidden: tf.gather(baseHidden, idx) as tf.Tensor2D,
            refusalLogit: tf.gather(baseLogits.refusal, idx) as tf.Tensor1D,
            harmfulnessLogit: tf.gather(baseLogits.harmfulness, idx) as tf.Tensor1D,
            labels: tf.gather(labels, idx) as tf.Tensor1D,
          };
          const l = droLoss(softHiddenStates(model, micro.map((i) => examples[i]!), soft), base, dirs, weights);
          const terms = { refusal: l.refusal.dataSync()[0]! * share, harmfulness: l.harmfulness.dataSync()[0]! * share, norm: l.norm.dataSync()[0]! * share };
          return { total: tf.mul(l.total, share) as tf.Scalar, terms };
        },
      },
      opt,
      hooks,
    );
    return { ...trained, shifts: logitShifts(model, examples, trained.softPrompt, directions.d, baseLogits, dirs, opt.microBatchSize) };
  } catch (err) {
    throw explainOutOfMemory(err, opt.microBatchSize);
  } finally {
    tf.dispose([baseHidden, baseLogits.refusal, baseLogits.harmfulness, labels]);
    disposeDirections(dirs);
  }
}

/** Where each training query ends up: boundary logits under the trained soft prompt vs the basic prompt. */
function logitShifts(
  model: TrainableModel,
  examples: DroExample[],
  softPrompt: Float32Array,
  d: number,
  baseLogits: ReturnType<typeof boundaryLogits>,
  dirs: ReturnType<typeof directionTensors>,
  chunkSize: number,
): LogitShift[] {
  const soft = tf.tensor2d(softPrompt, [softPrompt.length / d, d]);
  try {
    const shifts: LogitShift[] = [];
    const baseR = baseLogits.refusal.dataSync();
    const baseA = baseLogits.harmfulness.dataSync();
    for (let i = 0; i < examples.length; i += chunkSize) {
      const chunk = examples.slice(i, i + chunkSize);
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
    return shifts;
  } finally {
    soft.dispose();
  }
}
