/**
 * Do the native `tensorflow` backend's kernels compute what the wasm backend's do, for the ops the Llama
 * decoder and its input-embedding gradient use? The runtime's own eager decoder (packages/llm's
 * decoder-block.ts over eager ops, with the runtime's kernel tuning) runs a small random model — GQA,
 * Qwen2-style q|k|v biases, a left-padded row — forward and backward (tf.grad w.r.t. the input embeddings,
 * the DRO use) on both backends from the same weights.
 *
 *   node bin/tsnode.mjs tools/native-tf/check-ops.ts
 *
 * Passes when logits agree within 1e-4 (max|Δ| / max|ref|), gradients within 1e-3 with cosine ≥ 0.99999,
 * and no backend leaks tensors. Exit code 1 otherwise.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeTfjsNode } from '../../packages/llm/src/native/tfjs-node.mjs';
import { tuneNativeKernels } from '../../packages/llm/src/native/kernels.ts';
import { disposeStepContext, disposeWeights, embedTokens, lmLogits, ropeFrequencies, runDecoder, stepContext, uploadWeights } from '../../packages/llm/src/model/llama.ts';
import { padBatch } from '../../packages/llm/src/model/mask.ts';
import { memoryWeightSource, randomWeights, tinyConfig } from '../../packages/llm/src/testing/tiny-model.ts';

const SEQ = 16;
const config = tinyConfig({ architecture: 'qwen2', attentionBias: true, numHeads: 4, numKvHeads: 2 });
const hostWeights = randomWeights(config, 7);
// Two rows, the second left-padded, so the attention bias masks something.
const { ids, mask } = padBatch([Array.from({ length: SEQ }, (_, i) => (i * 37 + 11) % config.vocabSize), Array.from({ length: SEQ - 5 }, (_, i) => (i * 13 + 5) % config.vocabSize)], 0);

/** Deterministic values in [-scale, scale) from an LCG, so both backends get bit-identical inputs. */
function seeded(size: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state / 2 ** 31 - 1) * scale;
  }
  return out;
}

async function runOn(backend: string): Promise<{ logits: Float32Array; gradient: Float32Array; leaked: number }> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialise`);
  const before = tf.memory().numTensors;
  const w = uploadWeights(config, memoryWeightSource(hostWeights));
  const ctx = stepContext(config, ropeFrequencies(config), mask, SEQ);
  const logitsOf = (x: tf.Tensor3D) => lmLogits(w, runDecoder(config, w, x, ctx, null).hidden);
  const [logits, gradient] = tf.tidy(() => {
    const embeddings = embedTokens(config, w, ids);
    const probe = tf.tensor(seeded(ids.length * SEQ * config.vocabSize, 12, 1), [ids.length, SEQ, config.vocabSize]);
    // A scalar of the output (log-softmax picks up the normalisation's gradient too).
    const loss = (x: tf.Tensor): tf.Scalar => tf.sum(tf.mul(tf.logSoftmax(logitsOf(x as tf.Tensor3D)), probe));
    return [logitsOf(embeddings), tf.grad(loss)(embeddings)];
  });
  const result = { logits: (await logits.data()) as Float32Array, gradient: (await gradient.data()) as Float32Array };
  tf.dispose([logits, gradient]);
  disposeStepContext(ctx);
  disposeWeights(w);
  return { ...result, leaked: tf.memory().numTensors - before };
}

function compare(x: Float32Array, ref: Float32Array): { relative: number; cosine: number } {
  let maxDiff = 0;
  let maxRef = 0;
  let dot = 0;
  let xx = 0;
  let rr = 0;
  for (let i = 0; i < ref.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(x[i] - ref[i]));
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
    dot += x[i] * ref[i];
    xx += x[i] * x[i];
    rr += ref[i] * ref[i];
  }
  return { relative: maxDiff / maxRef, cosine: dot / Math.sqrt(xx * rr) };
}

// Loaded first because tfjs-node's bundled @tensorflow/tfjs registers every gradient (shared global registry);
// tfjs-core's own dist/register_all_gradients is ESM without file extensions and does not load under plain Node.
await loadNativeTfjsNode(tf);
tuneNativeKernels(); // the runtime's eager kernels on the native backend
const wasm = await runOn('wasm');
const native = await runOn('tensorflow');
const logits = compare(native.logits, wasm.logits);
const gradient = compare(native.gradient, wasm.gradient);
const pass = logits.relative <= 1e-4 && gradient.relative <= 1e-3 && gradient.cosine >= 0.99999 && wasm.leaked === 0 && native.leaked === 0;
console.log(`logits   tensorflow vs wasm: max|Δ|/max|ref| ${logits.relative.toExponential(2)}`);
console.log(`gradient tensorflow vs wasm: max|Δ|/max|ref| ${gradient.relative.toExponential(2)}, cosine ${gradient.cosine.toFixed(7)}`);
console.log(`tensors leaked: wasm ${wasm.leaked}, tensorflow ${native.leaked}`);
console.log(pass ? 'check-ops: PASS' : 'check-ops: FAIL');
if (!pass) process.exitCode = 1;
