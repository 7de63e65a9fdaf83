/**
 * Do the native `tensorflow` backend's kernels compute what the wasm backend's do, for the ops a Llama
 * decoder and its input-embedding gradient use? One small random decoder block (RMSNorm, rotary q/k,
 * causal softmax attention with batched matMuls, SwiGLU MLP, tied-embedding logits) runs forward and
 * backward (tf.grad w.r.t. the input embeddings, the DRO use) on both backends from the same weights.
 *
 *   node bin/tsnode.mjs tools/native-tf/check-ops.ts
 *
 * Passes when logits agree within 1e-4 (max|Δ| / max|ref|), gradients within 1e-3 with cosine ≥ 0.99999,
 * and no backend leaks tensors. Exit code 1 otherwise.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeTfjsNode } from '../../packages/llm/src/native/tfjs-node.mjs';

const BATCH = 2;
const SEQ = 16;
const HIDDEN = 64;
const HEADS = 4;
const HEAD_DIM = HIDDEN / HEADS;
const FFN = 160;
const VOCAB = 96;

/** Deterministic values in [-scale, scale) from an LCG, so both backends get bit-identical weights. */
function seeded(size: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state / 2 ** 31 - 1) * scale;
  }
  return out;
}

const weightData = {
  embedding: seeded(VOCAB * HIDDEN, 1, 0.5), // [V, H], tied with the output head
  wq: seeded(HIDDEN * HIDDEN, 2, 0.2), // [H, H]
  wk: seeded(HIDDEN * HIDDEN, 3, 0.2),
  wv: seeded(HIDDEN * HIDDEN, 4, 0.2),
  wo: seeded(HIDDEN * HIDDEN, 5, 0.2),
  wGate: seeded(HIDDEN * FFN, 6, 0.2), // [H, F]
  wUp: seeded(HIDDEN * FFN, 7, 0.2),
  wDown: seeded(FFN * HIDDEN, 8, 0.2), // [F, H]
  norm1: seeded(HIDDEN, 9, 0.1),
  norm2: seeded(HIDDEN, 10, 0.1),
};
const tokenIds = Int32Array.from({ length: BATCH * SEQ }, (_, i) => (i * 37 + 11) % VOCAB);

function rmsNorm(x: tf.Tensor3D, gainOffset: tf.Tensor1D): tf.Tensor3D {
  const rms = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5)); // [B, T, 1]
  return tf.mul(tf.mul(x, rms), tf.add(gainOffset, 1)) as tf.Tensor3D;
}

/** Rotary embedding in the rotate-half layout; x: [B, heads, T, D]. */
function rotary(x: tf.Tensor4D): tf.Tensor4D {
  const half = HEAD_DIM / 2;
  const inverseFreq = tf.pow(10000, tf.div(tf.range(0, half), -half)); // [D/2]
  const angles = tf.outerProduct(tf.range(0, SEQ), inverseFreq as tf.Tensor1D); // [T, D/2]
  const cos = tf.concat([tf.cos(angles), tf.cos(angles)], -1); // [T, D]
  const sin = tf.concat([tf.sin(angles), tf.sin(angles)], -1);
  const [first, second] = tf.split(x, 2, -1);
  const rotated = tf.concat([tf.neg(second), first], -1);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}

/** [B, T, H] → [B, heads, T, D] */
const splitHeads = (x: tf.Tensor): tf.Tensor4D => tf.transpose(tf.reshape(x, [BATCH, SEQ, HEADS, HEAD_DIM]), [0, 2, 1, 3]);

function decoderLogits(inputEmbeddings: tf.Tensor3D, w: Record<keyof typeof weightData, tf.Tensor>): tf.Tensor3D {
  const flat = (x: tf.Tensor): tf.Tensor2D => tf.reshape(x, [BATCH * SEQ, -1]);
  const h = rmsNorm(inputEmbeddings, w.norm1 as tf.Tensor1D);
  const q = rotary(splitHeads(tf.matMul(flat(h), w.wq as tf.Tensor2D)));
  const k = rotary(splitHeads(tf.matMul(flat(h), w.wk as tf.Tensor2D)));
  const v = splitHeads(tf.matMul(flat(h), w.wv as tf.Tensor2D));
  const causalMask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([SEQ, SEQ]), -1, 0)), -1e9); // [T, T]
  const scores = tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(HEAD_DIM)), causalMask); // [B, heads, T, T]
  const attended = tf.matMul(tf.softmax(scores), v); // [B, heads, T, D]
  const merged = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [BATCH * SEQ, HIDDEN]);
  const afterAttention = tf.add(inputEmbeddings, tf.reshape(tf.matMul(merged, w.wo as tf.Tensor2D), [BATCH, SEQ, HIDDEN]));
  const m = flat(rmsNorm(afterAttention as tf.Tensor3D, w.norm2 as tf.Tensor1D));
  const gate = tf.matMul(m, w.wGate as tf.Tensor2D);
  const swiglu = tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.matMul(m, w.wUp as tf.Tensor2D)); // [B·T, F]
  const out = tf.add(afterAttention, tf.reshape(tf.matMul(swiglu, w.wDown as tf.Tensor2D), [BATCH, SEQ, HIDDEN]));
  return tf.reshape(tf.matMul(flat(out), w.embedding as tf.Tensor2D, false, true), [BATCH, SEQ, VOCAB]); // [B, T, V]
}

async function runOn(backend: string): Promise<{ logits: Float32Array; gradient: Float32Array; leaked: number }> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialise`);
  const before = tf.memory().numTensors;
  const [logits, gradient] = tf.tidy(() => {
    const w = Object.fromEntries(Object.entries(weightData).map(([name, data]) => {
      const shape = name === 'embedding' ? [VOCAB, HIDDEN] : name.startsWith('norm') ? [HIDDEN] : name === 'wDown' ? [FFN, HIDDEN] : name === 'wGate' || name === 'wUp' ? [HIDDEN, FFN] : [HIDDEN, HIDDEN];
      return [name, tf.tensor(data, shape)];
    })) as Record<keyof typeof weightData, tf.Tensor>;
    const embeddings = tf.reshape(tf.gather(w.embedding, tf.tensor1d(tokenIds, 'int32')), [BATCH, SEQ, HIDDEN]) as tf.Tensor3D;
    const probe = tf.tensor(seeded(BATCH * SEQ * VOCAB, 12, 1), [BATCH, SEQ, VOCAB]);
    // A scalar of the output (log-softmax picks up the normalisation's gradient too).
    const loss = (x: tf.Tensor): tf.Scalar => tf.sum(tf.mul(tf.logSoftmax(decoderLogits(x as tf.Tensor3D, w)), probe));
    return [decoderLogits(embeddings, w), tf.grad(loss)(embeddings)];
  });
  const result = { logits: (await logits.data()) as Float32Array, gradient: (await gradient.data()) as Float32Array };
  tf.dispose([logits, gradient]);
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
