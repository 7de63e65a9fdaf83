/**
 * The evaluation's forward passes under one prompt condition (a text prompt, or a soft prompt spliced into
 * the basic prompt's span): final hidden states at the last input position, and the log-likelihood of
 * reference answers (the general-capability proxy).
 */
import { spliceSoftPrompt, tf, type ChatModel, type PromptedInput } from '@dro/llm';

/** Let signal handlers and progress reporting run between chunks. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Embeddings [B, T, d] + mask for a chunk: token embeddings, with the soft prompt spliced in when given. */
function chunkInput(model: ChatModel, inputs: PromptedInput[], soft: tf.Tensor2D | null) {
  if (soft !== null) return spliceSoftPrompt(model, inputs, soft);
  const maxLen = Math.max(...inputs.map((x) => x.ids.length));
  const ids = inputs.map((x) => [...new Array<number>(maxLen - x.ids.length).fill(model.padId), ...x.ids]);
  const mask = inputs.map((x) => [...new Array<number>(maxLen - x.ids.length).fill(0), ...new Array<number>(x.ids.length).fill(1)]);
  return { embeds: model.embed(ids), mask };
}

/** Final hidden states at the last input position: [N × d] row-major. */
export async function lastHiddenStates(
  model: ChatModel,
  inputs: PromptedInput[],
  soft: tf.Tensor2D | null,
  chunk: number,
  onChunk: (done: number) => void = () => {},
): Promise<Float32Array> {
  const d = model.config.hiddenSize;
  const out = new Float32Array(inputs.length * d);
  for (let i = 0; i < inputs.length; i += chunk) {
    const part = inputs.slice(i, i + chunk);
    const values = tf.tidy(() => {
      const { embeds, mask } = chunkInput(model, part, soft);
      const { lastHidden } = model.forward({ inputsEmbeds: embeds, attentionMask: mask, logitsFor: 'none' });
      const [b, t] = lastHidden.shape;
      return tf.slice(lastHidden, [0, t - 1, 0], [b, 1, d]).dataSync(); // [b, 1, d]
    });
    out.set(values, i * d);
    onChunk(Math.min(i + chunk, inputs.length));
    await yieldToEventLoop();
  }
  return out;
}

/**
 * Mean per-token log-likelihood (nats) of `answerIds` as the continuation of `prompt` under the condition,
 * by teacher forcing: the answer is appended after the prompt (so the soft-prompt span is unchanged) and
 * each answer token is scored by the logits of the position before it.
 */
export function answerLogLikelihood(model: ChatModel, prompt: PromptedInput, soft: tf.Tensor2D | null, answerIds: number[]): number {
  if (answerIds.length === 0) return 0;
  const full: PromptedInput = { ...prompt, ids: [...prompt.ids, ...answerIds] };
  return tf.tidy(() => {
    const { embeds, mask } = chunkInput(model, [full], soft);
    const { logits } = model.forward({ inputsEmbeds: embeds, attentionMask: mask, logitsFor: 'all' }); // [1, T, V]
    const t = logits.shape[1];
    const a = answerIds.length;
    // Positions t−a−1 … t−2 predict the a answer tokens.
    const scoring = tf.slice(logits, [0, t - a - 1, 0], [1, a, logits.shape[2]]);
    const logProbs = tf.logSoftmax(tf.reshape(scoring, [a, -1])); // [a, V]
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(tf.tensor1d(answerIds, 'int32'), logits.shape[2])), 1); // [a]
    return tf.mean(picked).dataSync()[0]!;
  });
}
