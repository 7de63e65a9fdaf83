/**
 * llama.cpp side of `npm run bench:llm`: node-llama-cpp (pinned in tools/bench/package.json, its prebuilt
 * linux-x64 CPU binary) on the same GGUF, same thread count and same shapes as tools/bench/bench-llm.ts:
 * prefill B×S (logits of the last position only: llama.cpp computes only the positions it samples from),
 * greedy decode at batch 1 and B, sampled decode (temperature / top-k / top-p) at each row count — every
 * decode rate from the time difference of STEPS and 1 new tokens, so prefill cancels. Parallel rows are
 * parallel sequences of one context, which node-llama-cpp evaluates in one llama.cpp batch per step.
 * Prints one JSON object (the last line). No fwd+bwd: llama.cpp has no backward pass.
 *
 * Run by bench-llm.ts in its own process (its peak RSS is then llama.cpp's alone):
 * `node bin/tsnode.mjs tools/bench/bench-llm-llamacpp.ts --model GGUF --threads N --batch B --seq S
 *  --decode-prompt P --decode-steps STEPS --repeats R --sample-rows 1,8,32,96 --top-p 0.9 --top-k 50 --temperature 1`
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: Object.fromEntries(
    ['model', 'threads', 'batch', 'seq', 'decode-prompt', 'decode-steps', 'repeats', 'sample-rows', 'top-p', 'top-k', 'temperature'].map((k) => [k, { type: 'string' as const }]),
  ),
});
const num = (key: string): number => {
  const value = Number(a[key]);
  if (a[key] === undefined || !Number.isFinite(value)) throw new Error(`bench-llm-llamacpp: --${key} must be a number, got ${a[key]}`);
  return value;
};
const threads = num('threads');
const [batch, seq, promptLength, steps, repeats] = [num('batch'), num('seq'), num('decode-prompt'), num('decode-steps'), num('repeats')];
const sampleRows = String(a['sample-rows']).split(',').map(Number);
const sampling = { temperature: num('temperature'), topK: num('top-k'), topP: num('top-p') };

let nlc: typeof import('node-llama-cpp');
try {
  nlc = await import('node-llama-cpp');
} catch (error) {
  throw new Error(
    'the llama.cpp reference needs node-llama-cpp, a dependency of the benchmark only: run `npm ci --prefix tools/bench` ' +
      `(about 700 MB of prebuilt binaries from npm; no download or build at install) — ${(error as Error).message}`,
  );
}
// Prebuilt CPU binary only: never build from source or download llama.cpp (no GitHub access), no GPU probing.
const llama = await nlc.getLlama({ gpu: false, build: 'never', maxThreads: threads, logLevel: nlc.LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: String(a.model) });
const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;

/** Deterministic random token ids (the other sides use their own random ids of the same shape). */
function randomIds(rows: number, length: number): Token[][] {
  let s = 7;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  return Array.from({ length: rows }, () => Array.from({ length }, () => Math.floor(next() * vocab) as Token));
}

type Token = import('node-llama-cpp').Token;
type EvaluateOptions = NonNullable<Parameters<import('node-llama-cpp').LlamaContextSequence['evaluate']>[1]>;

/** A context of `rows` parallel sequences of `perRow` tokens each; run(prompts, n) = wall seconds to feed prompt i to sequence i and take n tokens from each. */
async function withContext<T>(rows: number, perRow: number, fn: (run: (prompts: Token[][], n: number, options: EvaluateOptions) => Promise<number>) => Promise<T>): Promise<T> {
  // contextSize is per sequence: node-llama-cpp allocates sequences × contextSize cells of KV cache.
  const context = await model.createContext({ sequences: rows, contextSize: perRow, batchSize: Math.max(batch * seq, 512), threads });
  const sequences = Array.from({ length: rows }, () => context.getSequence());
  const run = async (prompts: Token[][], n: number, options: EvaluateOptions): Promise<number> => {
    await Promise.all(sequences.map((s) => s.clearHistory()));
    const start = performance.now();
    await Promise.all(
      sequences.slice(0, prompts.length).map(async (sequence, i) => {
        let taken = 0;
        // yieldEogToken: an end-of-generation token does not stop the row (as stopTokenIds: [] / min_new_tokens).
        for await (const _token of sequence.evaluate(prompts[i], { ...options, seed: i, yieldEogToken: true })) if (++taken >= n) break;
      }),
    );
    return (performance.now() - start) / 1000;
  };
  try {
    return await fn(run);
  } finally {
    await context.dispose();
  }
}

function median(values: number[]): number {
  return [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];
}

const greedy: EvaluateOptions = { temperature: 0 };
/** Decode tok/s at `rows` rows: (rows × (steps − 1)) / (t(steps) − t(1)), after a warm-up. */
async function decodeRate(rows: number, options: EvaluateOptions): Promise<number> {
  const prompts = randomIds(rows, promptLength);
  return withContext(rows, promptLength + steps + 8, async (run) => {
    await run(prompts, 2, options);
    const one = await run(prompts, 1, options);
    const many = await run(prompts, steps, options);
    return (rows * (steps - 1)) / (many - one);
  });
}

const prefillIds = randomIds(batch, seq);
const prefill = await withContext(batch, seq + 8, async (run) => {
  await run(prefillIds.slice(0, 1).map((row) => row.slice(0, 16)), 1, greedy); // warm-up
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) times.push(await run(prefillIds, 1, greedy));
  return median(times);
});
const decodeB1 = await decodeRate(1, greedy);
const decodeB8 = await decodeRate(batch, greedy);
const sample: Record<string, number> = {};
for (const rows of sampleRows) sample[rows] = await decodeRate(rows, sampling);
await model.dispose();
await llama.dispose();

console.log(
  JSON.stringify({
    threads,
    version: (JSON.parse(readFileSync(path.join(import.meta.dirname, 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8')) as { version: string }).version,
    build: llama.buildType,
    prefill_tokens_per_s: (batch * seq) / prefill,
    decode_b1_tokens_per_s: decodeB1,
    decode_b8_tokens_per_s: decodeB8,
    sample_tokens_per_s: sample,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  }),
);
