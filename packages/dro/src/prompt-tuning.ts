/**
 * The vanilla prompt-tuning baseline (the paper's comparison): the same soft-prompt initialisation, trained
 * on the model's own sampled responses to the training queries under the basic prompt, labelled by the
 * refusal judge — refusals are desirable for harmful queries, compliance for harmless ones:
 *   likelihood term    −mean log p(y_t | x, y_<t)        over desirable responses (tokens + end of turn)
 *   unlikelihood term  −mean log(1 − p(y_t | x, y_<t))   over undesirable responses
 * Each term averages over its tokens per response, then over responses in the batch.
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerAllGradients } from '@dro/llm';
import { AdamW, accumulateGradient } from './adamw.ts';
import { seededShuffle } from './shuffle.ts';
import { spliceSoftPrompt, type PromptedInput } from './soft-prompt.ts';
import { AbortedError, effectiveLearningRate, explainOutOfMemory, yieldToEventLoop, type CurvePoint, type OptimiserOptions, type TrainableModel, type TrainingHooks } from './train-dro.ts';

export interface ResponseExample {
  /** The query rendered with the basic prompt, and the prompt's span. */
  prompt: PromptedInput;
  /** Response token ids (with the end-of-turn token for desirable ones). */
  response: number[];
  desirable: boolean;
}

export interface PromptTuningWeights {
  likelihood: number;
  unlikelihood: number;
}

/** Upper bound of p in log(1 − p), so a token the model is sure of gives a large but finite penalty. */
const MAX_PROB = 1 - 1e-6;

/**
 * Per-example mean token log-probabilities of the responses ([B]) and mean log(1 − p) ([B]), with the
 * soft prompt spliced into each prompt's span and the response appended after the prompt.
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
      lik.push(tf.mean(logProbs) as tf.Scalar);
      const p = tf.minimum(tf.exp(logProbs), MAX_PROB);
      unlik.push(tf.mean(tf.log1p(tf.neg(p))) as tf.Scalar);
    });
    return { logLik: tf.stack(lik) as tf.Tensor1D, logUnlik: tf.stack(unlik) as tf.Tensor1D };
  });
}

export async function trainPromptTuning(
  model: TrainableModel,
  examples: ResponseExample[],
  init: { values: Float32Array; nTokens: number; d: number },
  weights: PromptTuningWeights,
  opt: OptimiserOptions,
  hooks: TrainingHooks = {},
): Promise<{ softPrompt: Float32Array; curve: CurvePoint[] }> {
  await registerAllGradients(); // tfjs-core ships its gradient functions separately
  const initTensor = tf.tensor2d(init.values, [init.nTokens, init.d]);
  const soft = tf.variable(initTensor, true, `prompt_tuning_${Date.now()}_${Math.random().toString(36).slice(2)}`); // [n, d]
  initTensor.dispose();
  const optimiser = new AdamW({ lr: effectiveLearningRate(opt, init.values), weightDecay: opt.weightDecay, maxGradNorm: opt.maxGradNorm });
  const curve: CurvePoint[] = [];
  try {
    const totalSteps = Math.min(Math.ceil(examples.length / opt.batchSize) * opt.epochs, opt.maxSteps ?? Infinity);
    let step = 0;
    for (let epoch = 0; epoch < opt.epochs && step < totalSteps; epoch++) {
      const order = seededShuffle(examples.length, opt.seed + epoch);
      for (let start = 0; start < order.length && step < totalSteps; start += opt.batchSize) {
        await yieldToEventLoop();
        if (hooks.signal?.aborted) throw new AbortedError('prompt tuning cancelled');
        const batch = order.slice(start, start + opt.batchSize).map((i) => examples[i]!);
        const nGood = batch.filter((x) => x.desirable).length;
        const nBad = batch.length - nGood;
        const sums = { total: 0, likelihood: 0, unlikelihood: 0 };
        let grad: tf.Tensor | null = null;
        for (let m = 0; m < batch.length; m += opt.microBatchSize) {
          const micro = batch.slice(m, m + opt.microBatchSize);
          const good = tf.tensor1d(micro.map((x) => (x.desirable ? 1 : 0)), 'float32');
          let parts = { likelihood: 0, unlikelihood: 0 };
          const { value, grads } = tf.variableGrads(() => {
            const { logLik, logUnlik } = responseLogProbs(model, micro, soft);
            // Sums over this micro-batch, divided by the batch's counts: the batch means, accumulated.
            const likelihood = nGood ? tf.div(tf.neg(tf.sum(tf.mul(logLik, good))), nGood) : tf.scalar(0);
            const unlikelihood = nBad ? tf.div(tf.neg(tf.sum(tf.mul(logUnlik, tf.sub(1, good)))), nBad) : tf.scalar(0);
            parts = { likelihood: likelihood.dataSync()[0]!, unlikelihood: unlikelihood.dataSync()[0]! };
            return tf.add(tf.mul(likelihood, weights.likelihood), tf.mul(unlikelihood, weights.unlikelihood)) as tf.Scalar;
          }, [soft]);
          good.dispose();
          sums.total += value.dataSync()[0]!;
          sums.likelihood += parts.likelihood;
          sums.unlikelihood += parts.unlikelihood;
          value.dispose();
          const g = grads[soft.name]!;
          grad = accumulateGradient(grad, g);
        }
        const gradNorm = optimiser.step(soft, grad!);
        grad!.dispose();
        step += 1;
        curve.push({ step, epoch: epoch + 1, terms: { ...sums, grad_norm: gradNorm } });
        hooks.progress?.(step, totalSteps, `prompt tuning epoch ${epoch + 1}/${opt.epochs} step ${step}/${totalSteps} loss ${sums.total.toFixed(4)}`);
      }
    }
    return { softPrompt: Float32Array.from(soft.dataSync()), curve };
  } catch (err) {
    throw explainOutOfMemory(err, opt.microBatchSize);
  } finally {
    optimiser.dispose();
    soft.dispose();
  }
}
