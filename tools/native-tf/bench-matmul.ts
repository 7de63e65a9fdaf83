/**
 * matMul throughput of the wasm backend vs the native `tensorflow` backend (tfjs-node built by
 * setup-native-tf.mjs), plus a correctness check: both backends against each other and against a float64
 * reference on sampled entries.
 *
 *   node bin/tsnode.mjs tools/native-tf/bench-matmul.ts [--json] [--seconds S] [--cpu]
 *
 * Shapes are the ones SmolLM2-135M's forward pass is made of: hidden 576 square projections (q/o) and the
 * MLP's up/gate projection 576 → 1536 over a batch of 1024 rows (8 × 128 tokens). GFLOP/s = 2·M·K·N / time,
 * median over timed repeats (each repeat waits for the result's data, so async backends are fully timed).
 * TensorFlow sizes its intra-op thread pool from TF_NUM_INTRAOP_THREADS (default: all cores); the table
 * reports that setting and how many OS threads the process gained when TensorFlow started.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { loadNativeTfjsNode, resolveNativeTfjsNode, SETUP_HINT } from '../../packages/llm/src/native/tfjs-node.mjs';

interface MatMulShape {
  name: string;
  m: number;
  k: number;
  n: number;
}

const SHAPES: MatMulShape[] = [
  { name: '576x576 · 576x576', m: 576, k: 576, n: 576 },
  { name: '1024x576 · 576x1536', m: 1024, k: 576, n: 1536 },
];

const argv = process.argv.slice(2);
const wantJson = argv.includes('--json');
const secondsPerCase = Number(argv[argv.indexOf('--seconds') + 1] ?? NaN) || 1.5;
const backends = ['wasm', 'tensorflow', ...(argv.includes('--cpu') ? ['cpu'] : [])];

/** Deterministic inputs in [-1, 1) (an LCG), identical for every backend. */
function seededMatrix(rows: number, cols: number, seed: number): Float32Array {
  const out = new Float32Array(rows * cols);
  let state = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

const threadCount = (): number => fs.readdirSync('/proc/self/task').length;

interface CaseResult {
  backend: string;
  shape: string;
  /** matMul alone: wasm, cpu and tensorflow all execute kernels synchronously, so the call is the work. */
  gflops: number;
  medianMs: number;
  /** matMul plus copying the [M, N] result back into a JS array (what a host round trip costs). */
  gflopsWithReadback: number;
  /** GFLOP per second of process CPU time (matMul alone): efficiency, robust to a busy machine. */
  gflopPerCpuSecond: number;
  repeats: number;
}

const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];

/**
 * Median wall time and median process CPU time (all threads, user + system) of repeats of `work`, run for
 * about `secondsPerCase` (at least 5 repeats). CPU time is what survives when other jobs share the cores:
 * wall time then stretches, CPU time per product much less (spinning worker threads do count).
 */
async function timeRepeats(work: () => Promise<void> | void): Promise<{ ms: number; cpuMs: number; repeats: number }> {
  const wall: number[] = [];
  const cpu: number[] = [];
  const budgetEnd = performance.now() + secondsPerCase * 1000;
  while (wall.length < 5 || (performance.now() < budgetEnd && wall.length < 200)) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await work();
    wall.push(performance.now() - t0);
    const used = process.cpuUsage(cpu0);
    cpu.push((used.user + used.system) / 1000);
  }
  return { ms: median(wall), cpuMs: median(cpu), repeats: wall.length };
}

/** Times a·b on the current backend; returns GFLOP/s and the product for the correctness check. */
async function timeMatMul(shape: MatMulShape, a: Float32Array, b: Float32Array): Promise<{ result: CaseResult; product: Float32Array }> {
  const aT = tf.tensor2d(a, [shape.m, shape.k]); // [M, K]
  const bT = tf.tensor2d(b, [shape.k, shape.n]); // [K, N]
  const withReadback = async (): Promise<Float32Array> => {
    const c = tf.matMul(aT, bT); // [M, N]
    const data = (await c.data()) as Float32Array;
    c.dispose();
    return data;
  };
  const product = await withReadback(); // warm-up: kernel set-up, thread pools, wasm memory growth
  await withReadback();
  const compute = await timeRepeats(() => tf.matMul(aT, bT).dispose());
  const roundTrip = await timeRepeats(async () => void (await withReadback()));
  aT.dispose();
  bT.dispose();
  const gflop = (2 * shape.m * shape.k * shape.n) / 1e9;
  const result = {
    backend: tf.getBackend(),
    shape: shape.name,
    gflops: gflop / (compute.ms / 1000),
    medianMs: compute.ms,
    gflopsWithReadback: gflop / (roundTrip.ms / 1000),
    gflopPerCpuSecond: gflop / (compute.cpuMs / 1000),
    repeats: compute.repeats,
  };
  return { result, product };
}

/** The same products in numpy (OpenBLAS), as context for what the cores can do; null without numpy. */
function numpyGflops(shape: MatMulShape): { gflops: number; gflopPerCpuSecond: number } | null {
  const script = `
import sys, time, numpy as np
m, k, n, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rng = np.random.default_rng(0)
a = rng.uniform(-1, 1, (m, k)).astype(np.float32); b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
a @ b; wall = []; cpu = []; end = time.perf_counter() + seconds
while len(wall) < 5 or (time.perf_counter() < end and len(wall) < 200):
    t0, c0 = time.perf_counter(), time.process_time(); a @ b
    wall.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
gflop = 2 * m * k * n / 1e9
print(gflop / sorted(wall)[len(wall) // 2], gflop / sorted(cpu)[len(cpu) // 2])
`;
  const r = spawnSync('python3', ['-c', script, String(shape.m), String(shape.k), String(shape.n), String(secondsPerCase)], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const [gflops, gflopPerCpuSecond] = r.stdout.trim().split(' ').map(Number);
  return { gflops, gflopPerCpuSecond };
}

/** max |x − y| / max |y|: a norm-wise relative error, stable where single entries are near zero. */
function relativeError(x: Float32Array | Float64Array, y: Float32Array | Float64Array): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < y.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
    maxRef = Math.max(maxRef, Math.abs(y[i]));
  }
  return maxDiff / maxRef;
}

/** Float64 dot products for a fixed sample of output entries; returns [sampled indices, reference values]. */
function float64Reference(shape: MatMulShape, a: Float32Array, b: Float32Array, samples = 256): [number[], Float64Array] {
  const indices = Array.from({ length: samples }, (_, i) => Math.floor(((i * 2654435761) % 2 ** 32) / 2 ** 32 * shape.m * shape.n));
  const ref = new Float64Array(samples);
  indices.forEach((flat, s) => {
    const row = Math.floor(flat / shape.n);
    const col = flat % shape.n;
    let sum = 0;
    for (let k = 0; k < shape.k; k++) sum += a[row * shape.k + k] * b[k * shape.n + col];
    ref[s] = sum;
  });
  return [indices, ref];
}

async function selectBackend(name: string): Promise<{ threadsGained?: number; intraOpThreads?: string }> {
  if (name !== 'tensorflow') {
    if (!(await tf.setBackend(name))) throw new Error(`backend ${name} did not initialise`);
    return {};
  }
  if (!resolveNativeTfjsNode()) throw new Error(`no native TensorFlow backend: ${SETUP_HINT}`);
  const before = threadCount();
  await loadNativeTfjsNode(tf);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('backend tensorflow did not initialise');
  // TensorFlow starts its pools lazily: run one op before counting threads.
  tf.tidy(() => tf.matMul(tf.ones([8, 8]), tf.ones([8, 8])).dataSync());
  return { threadsGained: threadCount() - before, intraOpThreads: process.env.TF_NUM_INTRAOP_THREADS ?? `default (${os.cpus().length} cores)` };
}

async function main(): Promise<void> {
  const results: CaseResult[] = [];
  const products = new Map<string, Float32Array>(); // `${backend}|${shape}` → [M, N] row-major
  const backendInfo: Record<string, object> = {};
  const inputs = SHAPES.map((s, i) => ({ shape: s, a: seededMatrix(s.m, s.k, 11 + i), b: seededMatrix(s.k, s.n, 101 + i) }));
  for (const backend of backends) {
    backendInfo[backend] = await selectBackend(backend);
    const tensorsBefore = tf.memory().numTensors;
    for (const { shape, a, b } of inputs) {
      const { result, product } = await timeMatMul(shape, a, b);
      results.push(result);
      products.set(`${backend}|${shape.name}`, product);
    }
    const leaked = tf.memory().numTensors - tensorsBefore;
    if (leaked !== 0) throw new Error(`${backend}: ${leaked} tensors leaked by the benchmark`);
  }

  const checks = inputs.map(({ shape, a, b }) => {
    const [indices, ref] = float64Reference(shape, a, b);
    const sampled = (p: Float32Array): Float64Array => Float64Array.from(indices, (i) => p[i]);
    const wasm = products.get(`wasm|${shape.name}`)!;
    const native = products.get(`tensorflow|${shape.name}`)!;
    return {
      shape: shape.name,
      tensorflowVsWasm: relativeError(native, wasm),
      wasmVsFloat64: relativeError(sampled(wasm), ref),
      tensorflowVsFloat64: relativeError(sampled(native), ref),
    };
  });
  const tolerance = 1e-4;
  const correct = checks.every((c) => c.tensorflowVsWasm <= tolerance && c.wasmVsFloat64 <= tolerance && c.tensorflowVsFloat64 <= tolerance);

  const numpy = new Map(SHAPES.map((shape) => [shape.name, numpyGflops(shape)]));
  const find = (backend: string, shape: string): CaseResult | undefined => results.find((r) => r.backend === backend && r.shape === shape);
  const [load1] = os.loadavg();
  console.log(`cores: ${os.cpus().length} (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, load average at end ${load1.toFixed(1)} (others' work skews timings)`);
  for (const [backend, info] of Object.entries(backendInfo)) if (Object.keys(info).length) console.log(`${backend}: ${JSON.stringify(info)}`);
  console.log('\nGFLOP/s, matMul alone (with the [M, N] result read back to JS in parentheses):');
  console.log(`| shape | ${backends.join(' | ')} | tensorflow / wasm | numpy (context) |`);
  console.log(`|---|${backends.map(() => '---:').join('|')}|---:|---:|`);
  for (const { name } of SHAPES) {
    const cells = backends.map((b) => `${find(b, name)!.gflops.toFixed(1)} (${find(b, name)!.gflopsWithReadback.toFixed(1)})`);
    const ratio = find('tensorflow', name)!.gflops / find('wasm', name)!.gflops;
    console.log(`| ${name} | ${cells.join(' | ')} | ${ratio.toFixed(2)}× | ${numpy.get(name)?.gflops.toFixed(1) ?? 'n/a'} |`);
  }
  console.log('\nGFLOP per CPU-second (all threads), matMul alone:');
  console.log(`| shape | ${backends.join(' | ')} | numpy (context) |`);
  console.log(`|---|${backends.map(() => '---:').join('|')}|---:|`);
  for (const { name } of SHAPES) {
    const cells = backends.map((b) => find(b, name)!.gflopPerCpuSecond.toFixed(1));
    console.log(`| ${name} | ${cells.join(' | ')} | ${numpy.get(name)?.gflopPerCpuSecond.toFixed(1) ?? 'n/a'} |`);
  }
  console.log('\ncorrectness (max|Δ| / max|ref|, tolerance 1e-4):');
  for (const c of checks) {
    console.log(`  ${c.shape}: tensorflow vs wasm ${c.tensorflowVsWasm.toExponential(2)}, wasm vs float64 ${c.wasmVsFloat64.toExponential(2)}, tensorflow vs float64 ${c.tensorflowVsFloat64.toExponential(2)}`);
  }
  console.log(correct ? 'correctness: PASS' : 'correctness: FAIL');
  if (wantJson) console.log(JSON.stringify({ results, numpyGflops: Object.fromEntries(numpy), checks, backendInfo, loadAverage1m: load1, correct }));
  if (!correct) process.exitCode = 1;
}

await main();
