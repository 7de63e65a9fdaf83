/**
 * `npm run bench:llm [-- --json] [-- --backend wasm|cpu|tensorflow] [-- --torch-threads N]`
 *
 * SmolLM2-135M-Instruct, our tfjs runtime side by side with PyTorch-CPU (transformers on the same GGUF,
 * same thread count) in one run: prefill tokens/s (batch 8 × 128, logits of the last position only, as
 * generation's prefill), decode tokens/s (batch 1 and 8, KV cache, greedy; from the time difference of
 * 16 and 1 new tokens, so prefill cancels), forward+backward w.r.t. input embeddings (batch 8 × 128,
 * scalar of the last final hidden state; the headline row is the runtime's default for that size —
 * plain backprop, like PyTorch, on the native backend; activation checkpointing on wasm, whose heap
 * cannot hold plain backprop's intermediates — and both variants get their own rows), peak RSS. Prefill and fwd+bwd are the
 * median of REPEATS runs on both sides (the machine is shared; single runs vary by ±15 %). Ratios are
 * ours / PyTorch (> 1 = we are faster). The two sides run one after the other so they do not compete
 * for the cores. On the native backend ours is what the runtime does by default: forwards as TensorFlow
 * graphs, plain backprop as the graph forward plus its derived backward graph; DRO_FORWARD_GRAPH=0
 * measures the eager ops instead.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { droCacheDir } from '@dro/artifacts';
import { generate, loadModel, mulberry32, requireSmolLm2Gguf, tf, type ChatModel } from '@dro/llm';
// Not part of @dro/llm's API: the benchmark reports which gradient-checkpointing default it measured.
import { checkpointsByDefault } from '../../packages/llm/src/model/chat-model.ts';

const PYREF = process.env.DRO_PYREF ?? path.join(droCacheDir(), 'pyref', 'bin', 'python');
const BATCH = 8;
const SEQ = 128;
const DECODE_PROMPT = 32;
const DECODE_STEPS = 16;
const REPEATS = 3;

const { values: flags } = parseArgs({
  options: { json: { type: 'boolean' }, backend: { type: 'string' }, 'torch-threads': { type: 'string' }, model: { type: 'string' } },
});

interface SideResult {
  threads: number;
  prefill_tokens_per_s: number;
  decode_b1_tokens_per_s: number;
  decode_b8_tokens_per_s: number;
  /** fwd+bwd as run by default (PyTorch: plain backprop; ours: see checkpointsByDefault). */
  train_tokens_per_s: number;
  peak_rss_mb: number;
  /** Ours only: which variant is the default, both variants, and the peak RSS before plain backprop ran. */
  train_default?: 'plain' | 'checkpointed';
  train_plain_tokens_per_s?: number;
  train_checkpointed_tokens_per_s?: number;
  peak_rss_checkpointed_mb?: number;
  /** Per CPU-second of the process (all threads): robust when other jobs share the cores. */
  prefill_tokens_per_cpu_s: number;
  train_tokens_per_cpu_s: number;
}

/** Wall seconds of fn; also records process CPU seconds (all threads) into cpuSeconds[label]. */
const cpuSeconds: Record<string, number> = {};
async function seconds(fn: () => unknown, label?: string): Promise<number> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  await fn();
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  if (label !== undefined) cpuSeconds[label] = (cpu.user + cpu.system) / 1e6;
  return wall;
}

/** Median wall seconds of `repeats` runs (CPU seconds of the median run under label). */
async function medianSeconds(fn: () => unknown, label: string, repeats = REPEATS): Promise<number> {
  const runs: { wall: number; cpu: number }[] = [];
  for (let i = 0; i < repeats; i++) {
    const wall = await seconds(fn, label);
    runs.push({ wall, cpu: cpuSeconds[label] });
  }
  runs.sort((a, b) => a.wall - b.wall);
  const median = runs[Math.floor(repeats / 2)];
  cpuSeconds[label] = median.cpu;
  return median.wall;
}

function randomIds(vocab: number, batch: number, length: number): number[][] {
  const rng = mulberry32(7);
  return Array.from({ length: batch }, () => Array.from({ length }, () => Math.floor(rng() * vocab)));
}

async function benchOurs(model: ChatModel, threads: number): Promise<SideResult> {
  const ids = randomIds(model.config.vocabSize, BATCH, SEQ);
  const forwardLast = (x: number[][]) => {
    const out = model.forward({ inputIds: x, logitsFor: 'last' });
    out.logits.dataSync(); // wait for the result
    tf.dispose([out.logits, out.lastHidden]);
  };
  forwardLast([ids[0].slice(0, 16)]); // warm-up
  const prefill = await medianSeconds(() => forwardLast(ids), 'prefill');

  const decode = async (batch: number): Promise<number> => {
    const prompts = ids.slice(0, batch).map((row) => row.slice(0, DECODE_PROMPT));
    const run = (steps: number) => generate(model, { inputIds: prompts, greedy: true, maxNewTokens: steps, stopTokenIds: [] });
    await run(2); // warm-up
    const one = await seconds(() => run(1));
    const many = await seconds(() => run(DECODE_STEPS));
    return (batch * (DECODE_STEPS - 1)) / (many - one);
  };
  const decodeB1 = await decode(1);
  const decodeB8 = await decode(BATCH);

  const d = model.config.hiddenSize;
  const direction = tf.tensor1d(Float32Array.from({ length: d }, (_, i) => Math.sin(0.1 * (i + 1))));
  const embeds = model.embed(ids);
  const trainStep = (checkpoint: boolean) => () => {
    const grad = tf.tidy(() =>
      tf.grad((x: tf.Tensor) => {
        const out = model.forward({ inputsEmbeds: x as tf.Tensor3D, logitsFor: 'none', checkpoint });
        return tf.sum(tf.mul(tf.slice(out.lastHidden, [0, SEQ - 1, 0], [BATCH, 1, d]), direction));
      })(embeds),
    );
    grad.dataSync();
    grad.dispose();
  };
  // Activation checkpointing first: the process's peak RSS is then recorded before plain backprop
  // (checkpoint: false, every intermediate kept) raises it.
  const trainCheckpointed = await medianSeconds(trainStep(true), 'train_checkpointed');
  const peakBeforePlainTrain = process.resourceUsage().maxRSS / 1024;
  // Plain backprop keeps every intermediate (~6 GB on the eager tape at 8×128; the native backend's graph
  // backward keeps ~0.8 GB): beyond the wasm heap's 4 GB, so wasm skips it.
  const trainPlain = model.backend === 'wasm' ? Number.NaN : await medianSeconds(trainStep(false), 'train_plain');
  const checkpointedByDefault = checkpointsByDefault(model.backend, BATCH * SEQ);
  tf.dispose([direction, embeds]);
  return {
    threads,
    prefill_tokens_per_s: (BATCH * SEQ) / prefill,
    decode_b1_tokens_per_s: decodeB1,
    decode_b8_tokens_per_s: decodeB8,
    train_tokens_per_s: (BATCH * SEQ) / (checkpointedByDefault ? trainCheckpointed : trainPlain),
    train_default: checkpointedByDefault ? 'checkpointed' : 'plain',
    train_plain_tokens_per_s: (BATCH * SEQ) / trainPlain,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    train_checkpointed_tokens_per_s: (BATCH * SEQ) / trainCheckpointed,
    peak_rss_checkpointed_mb: peakBeforePlainTrain,
    prefill_tokens_per_cpu_s: (BATCH * SEQ) / cpuSeconds.prefill,
    train_tokens_per_cpu_s: (BATCH * SEQ) / cpuSeconds[checkpointedByDefault ? 'train_checkpointed' : 'train_plain'],
  };
}

function benchTorch(modelPath: string, threads: number): SideResult {
  const script = path.join(import.meta.dirname, 'bench_llm_torch.py');
  const r = spawnSync(PYREF, [script, '--model', modelPath, '--threads', String(threads), '--batch', String(BATCH), '--seq', String(SEQ),
    '--decode-prompt', String(DECODE_PROMPT), '--decode-steps', String(DECODE_STEPS), '--repeats', String(REPEATS)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`PyTorch benchmark failed (${PYREF}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as SideResult;
}

const modelPath = flags.model ?? requireSmolLm2Gguf();
const loadStart = performance.now();
const model = await loadModel(modelPath, { backend: flags.backend });
const loadSeconds = (performance.now() - loadStart) / 1000;
const rssAfterLoadMb = process.memoryUsage().rss / 2 ** 20;
// wasm and cpu run on one thread under Node; the native backend uses every core.
const ourThreads = model.backend === 'tensorflow' ? os.cpus().length : 1;
const torchThreads = flags['torch-threads'] !== undefined ? Number(flags['torch-threads']) : ourThreads;
const ours = await benchOurs(model, ourThreads);
model.dispose();
const torch = benchTorch(modelPath, torchThreads);

const ratio = (key: keyof SideResult) => Number(ours[key]) / Number(torch[key]);
const summary = {
  model: path.basename(modelPath),
  backend: model.backend,
  cpus: os.cpus().length,
  load_seconds: loadSeconds,
  rss_after_load_mb: rssAfterLoadMb,
  ours,
  pytorch: torch,
  prefill_ratio: ratio('prefill_tokens_per_s'),
  decode_ratio: ratio('decode_b1_tokens_per_s'),
  decode_b8_ratio: ratio('decode_b8_tokens_per_s'),
  train_ratio: ratio('train_tokens_per_s'),
  train_plain_ratio: ours.train_plain_tokens_per_s! / torch.train_tokens_per_s,
  train_checkpointed_ratio: ours.train_checkpointed_tokens_per_s! / torch.train_tokens_per_s,
  prefill_cpu_ratio: ratio('prefill_tokens_per_cpu_s'),
  train_cpu_ratio: ratio('train_tokens_per_cpu_s'),
};

const rows: [string, string, string, string][] = [
  ['metric', `ours (${model.backend}, ${ours.threads} thr)`, `PyTorch CPU (${torch.threads} thr)`, 'ours / PyTorch'],
  [`prefill tok/s (${BATCH}×${SEQ})`, ours.prefill_tokens_per_s.toFixed(1), torch.prefill_tokens_per_s.toFixed(1), summary.prefill_ratio.toFixed(3)],
  ['decode tok/s (batch 1)', ours.decode_b1_tokens_per_s.toFixed(1), torch.decode_b1_tokens_per_s.toFixed(1), summary.decode_ratio.toFixed(3)],
  [`decode tok/s (batch ${BATCH})`, ours.decode_b8_tokens_per_s.toFixed(1), torch.decode_b8_tokens_per_s.toFixed(1), summary.decode_b8_ratio.toFixed(3)],
  [`fwd+bwd tok/s (${BATCH}×${SEQ}, default: ${ours.train_default})`, ours.train_tokens_per_s.toFixed(1), torch.train_tokens_per_s.toFixed(1), summary.train_ratio.toFixed(3)],
  ['fwd+bwd tok/s, plain backprop', ours.train_plain_tokens_per_s!.toFixed(1), torch.train_tokens_per_s.toFixed(1), summary.train_plain_ratio.toFixed(3)],
  ['fwd+bwd tok/s, checkpointed', ours.train_checkpointed_tokens_per_s!.toFixed(1), torch.train_tokens_per_s.toFixed(1), summary.train_checkpointed_ratio.toFixed(3)],
  ['prefill tok/CPU-s', ours.prefill_tokens_per_cpu_s.toFixed(1), torch.prefill_tokens_per_cpu_s.toFixed(1), summary.prefill_cpu_ratio.toFixed(3)],
  ['fwd+bwd tok/CPU-s', ours.train_tokens_per_cpu_s.toFixed(1), torch.train_tokens_per_cpu_s.toFixed(1), summary.train_cpu_ratio.toFixed(3)],
  ['peak RSS MB', ours.peak_rss_mb.toFixed(0), torch.peak_rss_mb.toFixed(0), (ours.peak_rss_mb / torch.peak_rss_mb).toFixed(3)],
  ['peak RSS MB before plain backprop', ours.peak_rss_checkpointed_mb!.toFixed(0), '-', '-'],
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
const table = rows.map((r) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`);
table.splice(1, 0, `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
console.log(table.join('\n'));
console.log(`model load ${loadSeconds.toFixed(1)} s, RSS after load ${rssAfterLoadMb.toFixed(0)} MB`);
if (flags.json) console.log(JSON.stringify(summary));
