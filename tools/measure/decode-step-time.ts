/**
 * Where one sampled decoding step's time goes at many parallel rows, for the host sampling path (the
 * [rows, V] logits to JS, top-k/top-p there) and the device top-k path (generate/token-candidates.ts),
 * and what generate() itself does with each. The bench's shapes: random prompts of 32 tokens, temperature
 * 1, top-k 50, top-p 0.9, no stop tokens.
 *
 *   node bin/tsnode.mjs tools/measure/decode-step-time.ts [--model ID|PATH] [--rows 96] [--steps 16] [--prompt 32]
 *     [--repeats 3] [--json]
 *
 * Part 1, the decode loop of generate.ts taken apart, ms per step (mean over steps 2..steps):
 *   - context:  embedding the new tokens on the host and uploading them
 *   - forward:  model.forwardWithCache (graph or eager decoder), including the KV-cache appends (and, on the
 *               device path, the top-k candidates)
 *   - download: the logits (host path) or the candidates (device path) to JS
 *   - sample:   min-new-tokens suppression + sampling of every row on the host
 *   - decode:   re-decoding each row's whole text with the tokenizer, as generate() did every step (it now
 *               decodes per step only with stop strings or streaming)
 *   - concat:   the step's KV-cache appends alone, as eager concats of the same shapes (inside `forward`;
 *               says what share they are; not part of the sum)
 * Part 2, end to end: prefill tok/s (8 × 128, last-position logits, as bench:llm) and generate()'s sampled
 * tok/s at `rows` (time difference of `steps` and 1 new tokens), host and device path interleaved
 * (DRO_DEVICE_TOP_K=0 / unset), median of `repeats`.
 * It is a measurement script, not part of the runtime; the load average is printed with it.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { generate, loadModel, mulberry32, padBatch, requireSmolLm2Gguf, resolveModelArgument, tf, type ChatModel } from '@dro/llm';
import { drawCandidate, sampleToken, suppressStopTokens } from '../../packages/llm/src/generate/logits-processors.ts';
import { candidateCount, DEVICE_TOP_K_ENV, topKFromCandidates, type TokenCandidates } from '../../packages/llm/src/generate/token-candidates.ts';
import type { LayerCache } from '../../packages/llm/src/model/llama.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    rows: { type: 'string', default: '96' },
    steps: { type: 'string', default: '16' },
    prompt: { type: 'string', default: '32' },
    repeats: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const ROWS = Number(args.rows);
const STEPS = Number(args.steps);
const PROMPT = Number(args.prompt);
const REPEATS = Number(args.repeats);
const SAMPLING = { temperature: 1, topK: 50, topP: 0.9 };
const STAGES = ['context', 'forward', 'download', 'sample', 'decode', 'concat'] as const;
type Stage = (typeof STAGES)[number];

const ms = (start: number) => performance.now() - start;

function randomPrompts(vocab: number, rows: number, length: number, seed = 7): number[][] {
  const rng = mulberry32(seed);
  return Array.from({ length: rows }, () => Array.from({ length }, () => Math.floor(rng() * vocab)));
}

/** Part 1: the decode loop stage by stage, on one path. */
async function stageTimes(model: ChatModel, prompts: number[][], device: boolean): Promise<Record<Stage, number>> {
  const vocab = model.config.vocabSize;
  const fetchCount = device ? candidateCount({ topK: SAMPLING.topK, greedy: false }, [], vocab) : 0;
  const totals = Object.fromEntries(STAGES.map((s) => [s, 0])) as Record<Stage, number>;
  const padded = padBatch(prompts, model.padId);
  const x0 = model.embed(padded.ids);
  const step0 = model.forwardWithCache(x0, padded.mask, null, { candidates: fetchCount });
  x0.dispose();
  let cache: LayerCache[] = step0.cache;
  let logits = step0.lastLogits;
  let candidates: TokenCandidates | undefined = step0.candidates;
  const mask = padded.mask.map((m) => [...m]);
  const rngs = prompts.map((_, i) => mulberry32(i));
  const tokens: number[][] = prompts.map(() => []);
  let measured = 0;
  for (let step = 0; step < STEPS; step++) {
    let t = performance.now();
    let host: Float32Array | null = null;
    let top: { values: Float32Array; indices: Int32Array; sums: Float32Array } | null = null;
    if (candidates !== undefined) {
      top = { values: (await candidates.values.data()) as Float32Array, indices: (await candidates.indices.data()) as Int32Array, sums: (await candidates.rowSums.data()) as Float32Array };
    } else {
      host = (await logits.data()) as Float32Array;
    }
    const download = ms(t);

    t = performance.now();
    const next = tokens.map((row, i) => {
      if (top !== null) {
        const picked = topKFromCandidates(top.values.subarray(i * fetchCount, (i + 1) * fetchCount), top.indices.subarray(i * fetchCount, (i + 1) * fetchCount), top.sums[i], SAMPLING.topK, []);
        if (picked === null) throw new Error('the measurement has no host fallback');
        return drawCandidate(picked.ids, picked.logits, null, SAMPLING, rngs[i]);
      }
      const rowLogits = host!.subarray(i * vocab, (i + 1) * vocab);
      suppressStopTokens(rowLogits, [], row.length, 0);
      return sampleToken(rowLogits, SAMPLING, rngs[i]);
    });
    const sample = ms(t);

    t = performance.now();
    next.forEach((token, i) => {
      tokens[i].push(token);
      model.tokenizer.decode(tokens[i], { skipSpecialTokens: true });
    });
    const decode = ms(t);

    t = performance.now();
    for (const c of cache) {
      const [b, kvh, hd] = c.keysT.shape;
      const fresh = [tf.zeros([b, kvh, hd, 1]), tf.zeros([b, kvh, 1, hd])];
      const appended = [tf.concat([c.keysT, fresh[0]], 3), tf.concat([c.values, fresh[1]], 2)];
      appended[1].dataSync(); // wait
      tf.dispose([...fresh, ...appended]);
    }
    const concat = ms(t);

    t = performance.now();
    for (const m of mask) m.push(1);
    const x = model.embed(next.map((token) => [token]));
    const context = ms(t);
    t = performance.now();
    const out = model.forwardWithCache(x, mask, cache, { candidates: fetchCount });
    const forward = ms(t); // tfjs-node, wasm and cpu run kernels synchronously: the forward is done here
    x.dispose();
    for (const c of cache) tf.dispose([c.keysT, c.values]);
    logits.dispose();
    if (candidates !== undefined) tf.dispose([candidates.values, candidates.indices, candidates.rowSums]);
    ({ cache, lastLogits: logits, candidates } = out);

    if (step > 0) {
      measured++;
      const stage = { context, forward, download, sample, decode, concat };
      for (const s of STAGES) totals[s] += stage[s];
    }
  }
  for (const c of cache) tf.dispose([c.keysT, c.values]);
  logits.dispose();
  if (candidates !== undefined) tf.dispose([candidates.values, candidates.indices, candidates.rowSums]);
  return Object.fromEntries(STAGES.map((s) => [s, totals[s] / measured])) as Record<Stage, number>;
}

/** Part 2: prefill tok/s and generate()'s sampled tok/s, host and device path interleaved. */
type Rate = { wall: number; cpu: number };
async function endToEnd(model: ChatModel, prompts: number[][]): Promise<{ prefill: Rate; host: Rate; device: Rate }> {
  const vocab = model.config.vocabSize;
  const prefillIds = randomPrompts(vocab, 8, 128);
  const forwardLast = () => {
    const out = model.forward({ inputIds: prefillIds, logitsFor: 'last' });
    out.logits.dataSync();
    tf.dispose([out.logits, out.lastHidden]);
  };
  // Wall seconds, and CPU seconds of the process (all threads) into `cpu`: robust when other jobs share the cores.
  let cpu = 0;
  const time = async (fn: () => unknown) => {
    const c = process.cpuUsage();
    const t = performance.now();
    await fn();
    const used = process.cpuUsage(c);
    cpu = (used.user + used.system) / 1e6;
    return (performance.now() - t) / 1000;
  };
  const run = (steps: number) => generate(model, { inputIds: prompts, ...SAMPLING, maxNewTokens: steps, stopTokenIds: [] });
  const sampled = async (device: boolean) => {
    if (device) delete process.env[DEVICE_TOP_K_ENV];
    else process.env[DEVICE_TOP_K_ENV] = '0';
    const one = await time(() => run(1));
    const oneCpu = cpu;
    const many = await time(() => run(STEPS));
    delete process.env[DEVICE_TOP_K_ENV];
    const tokens = prompts.length * (STEPS - 1);
    return { wall: tokens / (many - one), cpu: tokens / (cpu - oneCpu) };
  };
  forwardLast();
  await run(2);
  const runs = { prefill: [] as Rate[], host: [] as Rate[], device: [] as Rate[] };
  for (let r = 0; r < REPEATS; r++) {
    const wall = await time(forwardLast);
    runs.prefill.push({ wall: (8 * 128) / wall, cpu: (8 * 128) / cpu });
    runs.host.push(await sampled(false));
    runs.device.push(await sampled(true));
  }
  // Medians of wall and CPU rates, each on its own.
  const median = (xs: Rate[]): Rate => {
    const at = (k: keyof Rate) => xs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    return { wall: at('wall'), cpu: at('cpu') };
  };
  return { prefill: median(runs.prefill), host: median(runs.host), device: median(runs.device) };
}

const loadStart = os.loadavg();
const model = await loadModel(args.model !== undefined ? resolveModelArgument(args.model) : requireSmolLm2Gguf());
const prompts = randomPrompts(model.config.vocabSize, ROWS, PROMPT);
await stageTimes(model, prompts.slice(0, 4), true); // warm-up (graph load)
const stages = { host: await stageTimes(model, prompts, false), device: await stageTimes(model, prompts, true) };
const e2e = await endToEnd(model, prompts);
const result = {
  model: args.model ?? 'SmolLM2-135M-Instruct',
  backend: model.backend,
  rows: ROWS,
  prompt: PROMPT,
  steps: STEPS,
  ms_per_step: stages,
  prefill_tokens_per_s: e2e.prefill,
  sampled_tokens_per_s: { host: e2e.host, device: e2e.device },
  fraction_of_prefill: { host: e2e.host.wall / e2e.prefill.wall, device: e2e.device.wall / e2e.prefill.wall },
  fraction_of_prefill_cpu: { host: e2e.host.cpu / e2e.prefill.cpu, device: e2e.device.cpu / e2e.prefill.cpu },
  load_average: { start: loadStart, end: os.loadavg() },
};
model.dispose();
if (args.json) console.log(JSON.stringify(result));
else {
  const f = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  console.log(`${result.model}, ${model.backend}, ${ROWS} rows, prompt ${PROMPT}, ${STEPS} steps; load ${f(loadStart)} -> ${f(result.load_average.end)}`);
  console.log(`stage (ms/step)    host   device`);
  for (const s of STAGES) console.log(`${s.padEnd(14)} ${stages.host[s].toFixed(1).padStart(8)} ${stages.device[s].toFixed(1).padStart(8)}`);
  const sum = (p: Record<Stage, number>) => STAGES.filter((s) => s !== 'concat').reduce((a, s) => a + p[s], 0);
  console.log(`${'sum'.padEnd(14)} ${sum(stages.host).toFixed(1).padStart(8)} ${sum(stages.device).toFixed(1).padStart(8)}   (concat is inside forward)`);
  for (const k of ['wall', 'cpu'] as const) {
    const unit = k === 'wall' ? 'tok/s' : 'tok/CPU-s';
    const frac = k === 'wall' ? result.fraction_of_prefill : result.fraction_of_prefill_cpu;
    console.log(`${k}: prefill ${e2e.prefill[k].toFixed(0)} ${unit}; generate() sampled at ${ROWS} rows: host ${e2e.host[k].toFixed(0)} (${frac.host.toFixed(2)}x), device ${e2e.device[k].toFixed(0)} (${frac.device.toFixed(2)}x)`);
  }
}
