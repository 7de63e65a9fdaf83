/**
 * The vanilla prompt-tuning baseline (the paper's comparison): the same soft-prompt initialisation, trained
 * on the model's own sampled responses to the training queries under the basic prompt, labelled by their
 * recorded verdicts — refusals are desirable for harmful queries, compliance for harmless ones:
 *   likelihood term    −mean log p(y_t | x, y_<t)        over desirable responses' target tokens
 *   unlikelihood term  −mean log(1 − p(y_t | x, y_<t))   over undesirable responses' target tokens
 * Averaging ("lossAveraging"): "per-response" takes each response's mean over its tokens, then the mean
 * over the batch's responses of that kind; "per-token" (the published baseline) divides the sum over every
 * target token of that kind in the batch by their count, so long responses weigh more.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spliceSoftPrompt, type PromptedInput } from './soft-prompt.ts';
import { trainSoftPrompt, type CurvePoint, type OptimiserOptions, type TrainableModel, type TrainingHooks } from './soft-prompt-training.ts';

export interface ResponseExample {
  /** The query rendered with the basic prompt, and the prompt's span. */
  prompt: PromptedInput;
  /** Response token ids (with the end-of-turn token for desirable ones). */
  response: number[];
  desirable: boolean;
}

export interface PromptTuningLoss {
  weights: { likelihood: number; unlikelihood: number };
  averaging: 'per-response' | 'per-token';
}

/** Upper bound of p in log(1 − p), so a token the model is sure of gives a large but finite penalty. */
const MAX_PROB = 1 - 1e-6;

/**
 * Per-example sums over the response tokens of log p ([B]) and of log(1 − p) ([B]), with the soft prompt
 * spliced into each prompt's span and the response appended after the prompt.
 */
export function responseLogProbs(model: TrainableModel, batch: ResponseExample[], soft: tf.Tensor2D): { logLik: tf.Tensor1D; logUnlik: tf.Tensor1D } {
  return tf.tidy(() => {
    const inputs = batch.map((x) => ({ ...x.prompt, ids: [...x.prompt.ids, ...x.response] }));
    const { embeds, mask } = spliceSoftPrompt(model, inputs, soft);
    const { logits } = model.forward({ inputsEmbeds: embeds, attentionMask: mask, logitsFor: 'all' }); // [B, T, V]
    const [, t, vocab] = logits.shape;
    const lik: tf.Scalar[] = [];
    const unlik: tf.Scalar[] = [];
    batch.forEach((x, b) => {
      const a = x.response.length;
      // Left padding: row b's response occupies the last a positions; position p predicts token p + 1.
      const scoring = tf.reshape(tf.slice(logits, [b, t - a - 1, 0], [1, a, vocab]), [a, vocab]);
      const logProbs = tf.sum(tf.mul(tf.logSoftmax(scoring), tf.oneHot(tf.tensor1d(x.response, 'int32'), vocab)), 1); // [a]
      lik.push(tf.sum(logProbs) as tf.Scalar);
      const p = tf.minimum(tf.exp(logProbs), MAX_PROB);
      unlik.push(tf.sum(tf.log1p(tf.neg(p))) as tf.Scalar);
    });
    return { logLik: tf.stack(lik) as tf.Tensor1D, logUnlik: tf.stack(unlik) as tf.Tensor1D };
  });
}

/**
 * Each example's coefficient in its term: the term is −Σ coefficient · (its summed token log-probability).
 * per-response: 1 / (its tokens · responses of its kind); per-token: 1 / (tokens of its kind in the batch).
 */
export function termCoefficients(batch: readonly ResponseExample[], averaging: PromptTuningLoss['averaging']): number[] {
  const kinds = [true, false].map((desirable) => {
    const mine = batch.filter((x) => x.desirable === desirable);
    return { responses: mine.length, tokens: mine.reduce((s, x) => s + x.response.length, 0) };
  });
  return batch.map((x) => {
    const kind = kinds[x.desirable ? 0 : 1]!;
    return averaging === 'per-token' ? 1 / kind.tokens : 1 / (x.response.length * kind.responses);
  });
}

/** The baseline's loop is the one DRO uses (soft-prompt-training.ts); only the loss differs. */
export async function trainPromptTuning(
  model: TrainableModel,
  examples: ResponseExample[],
  init: { values: Float32Array; nTokens: number; d: number },
  loss: PromptTuningLoss,
  opt: OptimiserOptions,
  hooks: TrainingHooks = {},
): Promise<{ softPrompt: Float32Array; curve: CurvePoint[] }> {
  const { softPrompt, curve } = await trainSoftPrompt(
    examples.length,
    init,
    {
      name: 'prompt tuning',
      terms: ['likelihood', 'unlikelihood'],
      batchLoss: (batch) => {
        const coefficients = termCoefficients(batch.map((i) => examples[i]!), loss.averaging);
        const coefficientOf = new Map(batch.map((i, k) => [i, coefficients[k]!]));
        return (microIdx, soft) => {
          const micro = microIdx.map((i) => examples[i]!);
          const coef = microIdx.map((i) => coefficientOf.get(i)!);
          // Per example: its coefficient in the likelihood term (desirable) or in the unlikelihood term.
          const good = tf.tensor1d(micro.map((x, i) => (x.desirable ? coef[i]! : 0)), 'float32');
          const bad = tf.tensor1d(micro.map((x, i) => (x.desirable ? 0 : coef[i]!)), 'float32');
          const { logLik, logUnlik } = responseLogProbs(model, micro, soft);
          // This micro-batch's share of the batch's terms: summed over micro-batches, the batch's terms.
          const likelihood = tf.neg(tf.sum(tf.mul(logLik, good)));
          const unlikelihood = tf.neg(tf.sum(tf.mul(logUnlik, bad)));
          const terms = { likelihood: likelihood.dataSync()[0]!, unlikelihood: unlikelihood.dataSync()[0]! };
          return { total: tf.add(tf.mul(likelihood, loss.weights.likelihood), tf.mul(unlikelihood, loss.weights.unlikelihood)) as tf.Scalar, terms };
        };
      },
    },
    opt,
    hooks,
  );
  return { softPrompt, curve };
}
