/**
 * `npm run bench:llm [-- --json] [-- --backend wasm|cpu|tensorflow] [-- --torch-threads N] [-- --llamacpp-threads N]
 *   [-- --model ID|PATH]`
 *
 * SmolLM2-135M-Instruct by default (--model: a known model's id, e.g. qwen2.5-coder-0.5b, or a GGUF path; all
 * three sides load the same file), our tfjs runtime side by side with PyTorch-CPU (transformers on the same GGUF,
 * same thread count) and llama.cpp (node-llama-cpp on the same GGUF, same thread count, same shapes; see
 * bench-llm-llamacpp.ts) in one run: prefill tokens/s (batch 8 × 128, logits of the last position only, as
 * generation's prefill), decode tokens/s (batch 1 and 8, KV cache, greedy; from the time difference of
 * 16 and 1 new tokens, so prefill cancels), sampled decode tokens/s (temperature 1, top-k 50, top-p 0.9, the
 * same difference) at SAMPLE_ROWS parallel rows and as a fraction of the same side's prefill tokens/s,
 * forward+backward w.r.t. input embeddings (batch 8 × 128,
 * scalar of the last final hidden state; the headline row is the runtime's default for that size —
 * plain backprop, like PyTorch, on the native backend; activation checkpointing on wasm, whose heap
 * cannot hold plain backprop's intermediates — and both variants get their own rows), peak RSS. Prefill and fwd+bwd are the
 * median of REPEATS runs on both sides (the machine is shared; single runs vary by ±15 %). Ratios are
 * ours / PyTorch and ours / llama.cpp (> 1 = we are faster). The three sides run one after the other so they do not compete
 * for the cores. The load average (os.loadavg) at the start and end is printed with the table: the numbers
 * are only comparable at a similar load. On the native backend ours is what the runtime does by default: forwards as TensorFlow
 * graphs, plain backprop as the graph forward plus its derived backward graph; DRO_FORWARD_GRAPH=0
 * measures the eager ops instead.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { droCacheDir } from '@dro/artifacts';
import { generate, loadModel, mulberry32, requireSmolLm2Gguf, resolveModelArgument, tf, type ChatModel } from '@dro/llm';
// Not part of @dro/llm's API: the benchmark reports which gradient-checkpointing default it measured.
import { checkpointsByDefault } from '../../packages/llm/src/model/chat-model.ts';

const PYREF = process.env.DRO_PYREF ?? path.join(droCacheDir(), 'pyref', 'bin', 'python');
const BATCH = 8;
const SEQ = 128;
const DECODE_PROMPT = 32;
const DECODE_STEPS = 16;
const REPEATS = 3;
/** Parallel rows of the sampling row; ≥ 64 rows is the regime of the sampling stage (prompts × samples). */
const SAMPLE_ROWS = [1, 8, 32, 96];
/** The paper's sampling parameters. */
const SAMPLING = { temperature: 1, topK: 50, topP: 0.9 };
const LLAMACPP_SCRIPT = path.join(import.meta.dirname, 'bench-llm-llamacpp.ts');

const { values: flags } = parseArgs({
  options: {
    json: { type: 'boolean' },
    backend: { type: 'string' },
    'torch-threads': { type: 'string' },
    'llamacpp-threads': { type: 'string' },
    model: { type: 'string' },
  },
});

interface SideResult {
  threads: number;
  prefill_tokens_per_s: number;
  decode_b1_tokens_per_s: number;
  decode_b8_tokens_per_s: number;
  /** Sampled decode tokens/s by parallel rows (SAMPLE_ROWS, SAMPLING). */
  sample_tokens_per_s: Record<string, number>;
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
  // Rows 0..BATCH-1 are the decode prompts; more rows get their own random ids.
  const samplePrompts = [...ids.map((row) => row.slice(0, DECODE_PROMPT)), ...randomIds(model.config.vocabSize, Math.max(...SAMPLE_ROWS), DECODE_PROMPT).slice(BATCH)];
  const sample: Record<string, number> = {};
  for (const rows of SAMPLE_ROWS) {
    const run = (steps: number) => generate(model, { inputIds: samplePrompts.slice(0, rows), ...SAMPLING, maxNewTokens: steps, stopTokenIds: [] });
    await run(2); // warm-up
    const one = await seconds(() => run(1));
    const many = await seconds(() => run(DECODE_STEPS));
    sample[rows] = (rows * (DECODE_STEPS - 1)) / (many - one);
  }

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
    sample_tokens_per_s: sample,
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

/** The shapes and sampling parameters both reference processes are given. */
function shapeArgs(modelPath: string, threads: number): string[] {
  return ['--model', modelPath, '--threads', String(threads), '--batch', String(BATCH), '--seq', String(SEQ), '--decode-prompt', String(DECODE_PROMPT),
    '--decode-steps', String(DECODE_STEPS), '--repeats', String(REPEATS), '--sample-rows', SAMPLE_ROWS.join(','),
    '--top-p', String(SAMPLING.topP), '--top-k', String(SAMPLING.topK), '--temperature', String(SAMPLING.temperature)];
}

/** Runs a reference side in its own process and returns its last stdout line, parsed. */
function runSide<T>(name: string, command: string, args: string[]): T {
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${name} benchmark failed (${command} ${args[0]}): ${(r.stderr || r.error?.message || '').slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

const benchTorch = (modelPath: string, threads: number): SideResult =>
  runSide('PyTorch', PYREF, [path.join(import.meta.dirname, 'bench_llm_torch.py'), ...shapeArgs(modelPath, threads)]);

interface LlamaCppResult {
  threads: number;
  version: string;
  prefill_tokens_per_s: number;
  decode_b1_tokens_per_s: number;
  decode_b8_tokens_per_s: number;
  sample_tokens_per_s: Record<string, number>;
  peak_rss_mb: number;
}
const benchLlamaCpp = (modelPath: string, threads: number): LlamaCppResult =>
  runSide('llama.cpp', process.execPath, [path.join(import.meta.dirname, '..', '..', 'bin', 'tsnode.mjs'), LLAMACPP_SCRIPT, ...shapeArgs(modelPath, threads)]);

const modelPath = flags.model !== undefined ? resolveModelArgument(flags.model) : requireSmolLm2Gguf();
const loadAtStart = os.loadavg();
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
const llamaThreads = flags['llamacpp-threads'] !== undefined ? Number(flags['llamacpp-threads']) : ourThreads;
const llamacpp = benchLlamaCpp(modelPath, llamaThreads);
const loadAtEnd = os.loadavg();
const maxRows = String(Math.max(...SAMPLE_ROWS));

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
  llamacpp,
  prefill_ratio_llamacpp: ours.prefill_tokens_per_s / llamacpp.prefill_tokens_per_s,
  decode_ratio_llamacpp: ours.decode_b1_tokens_per_s / llamacpp.decode_b1_tokens_per_s,
  decode_b8_ratio_llamacpp: ours.decode_b8_tokens_per_s / llamacpp.decode_b8_tokens_per_s,
  /** Ours: sampled tok/s at the most rows (SAMPLE_ROWS, ≥ 64) ÷ our prefill tok/s in this run. */
  sample_fraction_of_prefill: ours.sample_tokens_per_s[maxRows] / ours.prefill_tokens_per_s,
  sample_rows: SAMPLE_ROWS,
  sampling: SAMPLING,
  /** 1-, 5- and 15-minute load averages before our side and after the last reference. */
  load_average: { start: loadAtStart, end: loadAtEnd },
};

const f1 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));
const r3 = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '-' : (a / b).toFixed(3));
/** metric, ours, PyTorch, llama.cpp (undefined = not measured there); the ratio columns follow. */
const line = (metric: string, o: number | undefined, t: number | undefined, l: number | undefined, digits = 1): string[] => {
  const show = (x: number | undefined) => (digits === 1 ? f1(x) : x === undefined ? '-' : x.toFixed(digits));
  return [metric, show(o), show(t), show(l), r3(o, t), r3(o, l)];
};
const sampleFraction = (side: { prefill_tokens_per_s: number; sample_tokens_per_s: Record<string, number> }) => side.sample_tokens_per_s[maxRows] / side.prefill_tokens_per_s;
const rows: string[][] = [
  ['metric', `ours (${model.backend}, ${ours.threads} thr)`, `PyTorch CPU (${torch.threads} thr)`, `llama.cpp ${llamacpp.version} (${llamacpp.threads} thr)`, 'ours / PyTorch', 'ours / llama.cpp'],
  line(`prefill tok/s (${BATCH}×${SEQ})`, ours.prefill_tokens_per_s, torch.prefill_tokens_per_s, llamacpp.prefill_tokens_per_s),
  line('decode tok/s (batch 1, greedy)', ours.decode_b1_tokens_per_s, torch.decode_b1_tokens_per_s, llamacpp.decode_b1_tokens_per_s),
  line(`decode tok/s (batch ${BATCH}, greedy)`, ours.decode_b8_tokens_per_s, torch.decode_b8_tokens_per_s, llamacpp.decode_b8_tokens_per_s),
  ...SAMPLE_ROWS.map((n) =>
    line(`sampled tok/s (${n} rows, T ${SAMPLING.temperature} top-k ${SAMPLING.topK} top-p ${SAMPLING.topP})`, ours.sample_tokens_per_s[n], torch.sample_tokens_per_s[n], llamacpp.sample_tokens_per_s[n]),
  ),
  line(`sampled ÷ prefill tok/s (${maxRows} rows, each side its own)`, sampleFraction(ours), sampleFraction(torch), sampleFraction(llamacpp), 3),
  line(`fwd+bwd tok/s (${BATCH}×${SEQ}, default: ${ours.train_default})`, ours.train_tokens_per_s, torch.train_tokens_per_s, undefined),
  line('fwd+bwd tok/s, plain backprop', ours.train_plain_tokens_per_s, torch.train_tokens_per_s, undefined),
  line('fwd+bwd tok/s, checkpointed', ours.train_checkpointed_tokens_per_s, torch.train_tokens_per_s, undefined),
  line('prefill tok/CPU-s', ours.prefill_tokens_per_cpu_s, torch.prefill_tokens_per_cpu_s, undefined),
  line('fwd+bwd tok/CPU-s', ours.train_tokens_per_cpu_s, torch.train_tokens_per_cpu_s, undefined),
  line('peak RSS MB', ours.peak_rss_mb, torch.peak_rss_mb, llamacpp.peak_rss_mb, 0),
  line('peak RSS MB before plain backprop', ours.peak_rss_checkpointed_mb, undefined, undefined, 0),
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
const table = rows.map((r) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`);
table.splice(1, 0, `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
console.log(table.join('\n'));
console.log(`model load ${loadSeconds.toFixed(1)} s, RSS after load ${rssAfterLoadMb.toFixed(0)} MB; load average ${loadAtStart.map((x) => x.toFixed(2)).join(' ')} at the start, ${loadAtEnd.map((x) => x.toFixed(2)).join(' ')} at the end (${os.cpus().length} CPUs)`);
if (flags.json) console.log(JSON.stringify(summary));
