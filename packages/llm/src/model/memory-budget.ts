/**
 * How much memory a backend can give a model, what a model and a request need, and the checks that refuse
 * what cannot fit — before loading or allocating, with a message naming the backend and the limit — so a
 * model too large for the wasm heap is not run into XNNPACK's out-of-memory garbage, and
 * `generate --samples 100000` fails at once instead of growing until the OOM killer.
 *
 * The estimates are the dominant allocations only (they under-count), so a refusal means the request
 * certainly cannot fit; what passes may still be tight.
 */
import os from 'node:os';
import { BadInputError } from '@dro/artifacts';
import type { BackendName } from '../backend.ts';
import type { ModelConfig } from '../config.ts';

/** The wasm heap's ceiling: tfjs-backend-wasm 4.22's binaries declare at most 65,536 pages of 64 KiB. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

/**
 * Resident bytes per byte of float32 weights. On wasm XNNPACK packs its own copy of every matmul weight
 * when the operator is first created: SmolLM2-135M's heap grew from 515 MiB after loading to 1,127 MiB
 * after the first forward (the backend's HEAPU8 length, SmolLM2 Q4_1 GGUF, one 9-token forward). Native
 * TensorFlow and the cpu backend compute on the uploaded tensors.
 */
const RESIDENT_FACTOR: Record<BackendName, number> = { wasm: 2.2, tensorflow: 1, 'tensorflow-gpu': 1, cpu: 1 };

/** Working memory a model must leave free on its backend to run anything at all. */
export const MIN_WORKING_BYTES = 256 * 2 ** 20;

const F32 = 4;

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 40) return `${(bytes / 2 ** 40).toFixed(1)} TiB`;
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  return `${Math.ceil(bytes / 2 ** 20)} MiB`;
}

/** The memory a backend can use at most, and how to say it. */
export function backendMemory(backend: BackendName): { bytes: number; what: string } {
  if (backend === 'wasm') return { bytes: WASM_HEAP_BYTES, what: 'the wasm heap limit of 4 GiB' };
  // A container's memory limit (cgroup) where one is set, else the machine's physical memory. For
  // tensorflow-gpu this is the host's memory too: the GPU's own memory is not queried (untested on a GPU).
  const constrained = process.constrainedMemory?.() ?? 0;
  const physical = os.totalmem();
  const bytes = constrained > 0 && constrained < physical ? constrained : physical;
  return { bytes, what: `${formatBytes(bytes)} of ${bytes === physical ? 'physical memory' : 'memory (container limit)'}` };
}

/** Bytes the model's weights occupy on `backend` once it has run (see RESIDENT_FACTOR). */
export function residentModelBytes(backend: BackendName, weightBytes: number): number {
  return weightBytes * RESIDENT_FACTOR[backend];
}

/** Refuses a model whose weights cannot fit the backend (called before anything is uploaded). */
export function checkModelFits(backend: BackendName, weightBytes: number, model: string): void {
  const { bytes, what } = backendMemory(backend);
  const resident = residentModelBytes(backend, weightBytes);
  if (resident + MIN_WORKING_BYTES > bytes) {
    const how = backend === 'wasm' ? ` (${formatBytes(weightBytes)} of float32 weights, and XNNPACK's packed copy of the matmul weights)` : ` of float32 weights`;
    throw new BadInputError(
      `${model}: the model needs ${formatBytes(resident)}${how} plus ${formatBytes(MIN_WORKING_BYTES)} to run on the ${backend} backend, ` +
        `over ${what}` + (backend === 'wasm' ? '; use the tensorflow backend (--backend tensorflow) or a smaller model' : '; use a smaller model'),
    );
  }
}

/** KV cache of `rows` sequences of `positions`: layers × (keys + values) × kvHeads × headDim × rows × positions × 4 B. */
export function kvCacheBytes(c: ModelConfig, rows: number, positions: number): number {
  return c.numLayers * 2 * c.numKvHeads * c.headDim * rows * positions * F32;
}

/** One layer's attention scores and probabilities: rows × heads × queries × keys, twice. */
export function attentionBytes(c: ModelConfig, rows: number, queries: number, keys: number): number {
  return 2 * rows * c.numHeads * queries * keys * F32;
}

/** One block's activations over rows × positions (residual, normed input, q|k|v, attention output, MLP). */
function blockActivationBytes(c: ModelConfig, tokens: number): number {
  return tokens * (4 * c.hiddenSize + (c.numHeads + 2 * c.numKvHeads) * c.headDim + 3 * c.intermediateSize) * F32;
}

export interface RequestEstimate {
  bytes: number;
  /** The terms, for the error message ("KV cache 12.0 GiB, logits 1.2 GiB"). */
  parts: [string, number][];
}

function estimate(parts: [string, number][]): RequestEstimate {
  return { bytes: parts.reduce((sum, [, b]) => sum + b, 0), parts };
}

/**
 * generate(): the KV cache of every row (prompts × samples) over prompt + new positions, held twice while
 * a decoding step concatenates; the [rows, V] logits on the backend and their host copy; the prefill's
 * attention and activations (per prompt, before the samples are replicated).
 */
export function generateEstimate(c: ModelConfig, prompts: number, samples: number, promptLength: number, newTokens: number): RequestEstimate {
  const rows = prompts * samples;
  return estimate([
    ['KV cache', 2 * kvCacheBytes(c, rows, promptLength + newTokens)],
    ['logits', 2 * rows * c.vocabSize * F32],
    ['prefill attention', attentionBytes(c, prompts, promptLength, promptLength)],
    ['prefill activations', blockActivationBytes(c, prompts * promptLength)],
  ]);
}

/** forward(): one layer's attention, one block's activations, every layer's hidden state [b, t, d], the logits. */
export function forwardEstimate(c: ModelConfig, rows: number, positions: number, logitPositions: number): RequestEstimate {
  return estimate([
    ['attention', attentionBytes(c, rows, positions, positions)],
    ['activations', blockActivationBytes(c, rows * positions) + (c.numLayers + 1) * rows * positions * c.hiddenSize * F32],
    ['logits', rows * logitPositions * c.vocabSize * F32],
  ]);
}

/** The memory left for requests once a model is resident, and the check that refuses what exceeds it. */
export class MemoryBudget {
  readonly bytes: number;
  private readonly what: string;

  constructor(
    readonly backend: BackendName,
    weightBytes: number,
  ) {
    const memory = backendMemory(backend);
    const resident = residentModelBytes(backend, weightBytes);
    this.bytes = Math.max(0, memory.bytes - resident);
    this.what = `${formatBytes(this.bytes)} left on the ${backend} backend (${memory.what}, less ${formatBytes(resident)} for the model)`;
  }

  fits(e: RequestEstimate): boolean {
    return e.bytes <= this.bytes;
  }

  /** Throws a BadInputError naming the request, its needs and the budget when `e` does not fit. */
  check(request: string, e: RequestEstimate): void {
    if (this.fits(e)) return;
    const parts = e.parts.filter(([, b]) => b > 0).map(([name, b]) => `${name} ${formatBytes(b)}`).join(', ');
    throw new BadInputError(`${request} needs at least ${formatBytes(e.bytes)} (${parts}), over the memory budget: ${this.what}`);
  }
}
