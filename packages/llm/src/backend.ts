/**
 * The one place the TensorFlow.js backend is chosen. Everything else imports `tf` from here, so the
 * backend can be swapped by config/env without touching model code, and the active backend is recorded in
 * artifact manifests via `initBackend()`'s return value.
 *
 * Backends:
 *  - 'wasm' (the portable default; 'auto' picks it when no native build is installed): XNNPACK kernels with SIMD. Under Node the threaded build does not engage (no
 *    SharedArrayBuffer workers), so it runs on one thread.
 *  - 'cpu': the pure-JS fallback (slow, ~30x below wasm on matmuls), always available.
 *  - 'tensorflow': native libtensorflow through @tensorflow/tfjs-node, when that package is installed
 *    ('auto', the default, picks it when tools/native-tf has built it).
 *  - 'tensorflow-gpu': TensorFlow's GPU build through @tensorflow/tfjs-node-gpu (opt-in: setup --gpu). Only
 *    ever chosen by name; it runs on a GPU or not at all — where TensorFlow sees no GPU it is a BackendError,
 *    never a silent run on the CPU. Its tfjs backend is tfjs-node's, also named 'tensorflow' inside tfjs,
 *    so the native graph paths serve both.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import path from 'node:path';
import { tuneNativeKernels } from './native/kernels.ts';
import { captureWasmStderr, guardWasmHeap, guardWasmKernels } from './wasm-errors.ts';
import { WASM_HEAP_BYTES } from './model/memory-budget.ts';

export { tf };

export type BackendName = 'wasm' | 'cpu' | 'tensorflow' | 'tensorflow-gpu';
export const BACKEND_NAMES: readonly BackendName[] = ['wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'];

/** Whether `backend` runs on native TensorFlow (tfjs-node or tfjs-node-gpu; tfjs's backend 'tensorflow'). */
export function isNativeBackend(backend: BackendName): boolean {
  return backend === 'tensorflow' || backend === 'tensorflow-gpu';
}

/** Env var that picks the backend when initBackend() is called without a name. */
export const BACKEND_ENV = 'DRO_TFJS_BACKEND';

export class BackendError extends Error {
  override name = 'BackendError';
}

/** The process's backend, once chosen (resolves to its name; rejected if it failed to initialise). */
let initialised: Promise<BackendName> | null = null;
let initialisedName: BackendName | null = null;

/**
 * Select and initialise the process's backend — once. The first call chooses: its argument, else
 * $DRO_TFJS_BACKEND, else 'auto' (tensorflow when the native build is installed, else wasm). Every later
 * call returns that backend: without a name (or with 'auto') it is simply reused — a stage or loadModel
 * never re-resolves the default and switches a pinned process (`dro worker --backend wasm`) to another
 * backend — and asking for a different one is a BackendError. Manifests record what this returns.
 */
export async function initBackend(name?: string): Promise<BackendName> {
  const explicit = name === undefined || name === 'auto' ? null : parseBackendName(name);
  if (initialised === null) {
    const requested = name ?? process.env[BACKEND_ENV] ?? 'auto';
    // Assigned before any await, so concurrent first calls share one choice.
    initialised = (async () => {
      const wanted = requested === 'auto' ? await autoBackend() : parseBackendName(requested);
      initialisedName = wanted;
      return activate(wanted);
    })().catch((err: unknown) => {
      // Nothing is active: a later call may choose again.
      initialised = null;
      initialisedName = null;
      throw err;
    });
  }
  const active = await initialised;
  if (explicit !== null && explicit !== active) {
    throw new BackendError(
      `this process runs on the tfjs backend "${active}" (chosen once, at its first model use); ` +
        `it cannot switch to "${explicit}" — run the work that needs "${explicit}" in a process started with that backend`,
    );
  }
  return active;
}

/** The active backend's name (after initBackend), for manifests. */
export function activeBackend(): BackendName {
  if (initialisedName === null) throw new BackendError('initBackend() has not been called');
  return initialisedName;
}

/**
 * 'auto' (the default): the native TensorFlow backend where its build is installed (setup builds it on
 * linux-x64), else the portable wasm backend. Explicit names always win.
 */
async function autoBackend(): Promise<BackendName> {
  const { resolveNativeTfjsNode } = await import('./native/tfjs-node.mjs');
  return resolveNativeTfjsNode() !== null ? 'tensorflow' : 'wasm';
}

function parseBackendName(name: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new BackendError(`unknown tfjs backend "${name}" (from ${BACKEND_ENV} or --backend): expected auto or one of ${BACKEND_NAMES.join(', ')}`);
}

async function activate(name: BackendName): Promise<BackendName> {
  await registerAllGradients();
  if (name === 'wasm') await registerWasm();
  if (name === 'tensorflow') await registerNative();
  if (name === 'tensorflow-gpu') await registerNativeGpu();
  if (isNativeBackend(name)) tuneNativeKernels();
  const tfjsName = isNativeBackend(name) ? 'tensorflow' : name;
  const ok = await tf.setBackend(tfjsName);
  if (!ok) throw new BackendError(`tfjs backend "${name}" failed to initialise`);
  await tf.ready();
  if (name === 'tensorflow-gpu') requireGpuDevice();
  return name;
}

async function registerNativeGpu(): Promise<void> {
  const { resolveNativeTfjsNode, loadNativeTfjsNode, NATIVE_TF_VARIANTS } = await import('./native/tfjs-node.mjs');
  if (resolveNativeTfjsNode('gpu') === null) {
    throw new BackendError(`tfjs backend "tensorflow-gpu" is not installed: ${NATIVE_TF_VARIANTS.gpu.setupHint}`);
  }
  await loadNativeTfjsNode(tf, 'gpu');
}

/**
 * tfjs-node-gpu places work on the first GPU TensorFlow lists and otherwise, silently, on the CPU (its
 * binding's isUsingGpuDevice). A run that asked for the GPU stops here instead.
 */
function requireGpuDevice(): void {
  const usingGpu = (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
  if (usingGpu) return;
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  throw new BackendError(
    `tfjs backend "tensorflow-gpu": TensorFlow found no GPU on this machine${visible !== undefined ? ` (CUDA_VISIBLE_DEVICES=${JSON.stringify(visible)})` : ''} ` +
      '— no CUDA device or driver; it does not fall back to the CPU (use --backend tensorflow for that; TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow\'s diagnostics)',
  );
}

/**
 * tfjs-core ships its gradients only as extensionless ESM (dist/register_all_gradients.js imports
 * '../kernel_names') in a package without "type": "module", so plain Node loads it as CommonJS-that-is-
 * ESM and fails to resolve the imports (bundlers and vitest cope). Loading it through require() with
 * tsx's CommonJS hook (which transforms ESM syntax, and where CommonJS resolution probes '.js') works; the
 * kernel/gradient registries and the engine live on globalThis, so that copy's gradients serve all.
 */
let gradientsRegistered: Promise<void> | null = null;

/** Register every tfjs-core gradient (idempotent); the DRO trainer differentiates through the model. */
export function registerAllGradients(): Promise<void> {
  gradientsRegistered ??= (async () => {
    const tsx = await import('tsx/cjs/api').catch(() => null);
    if (tsx === null) {
      await import('@tensorflow/tfjs-core/dist/register_all_gradients');
      return;
    }
    const unregister = tsx.register();
    try {
      createRequire(import.meta.url)('@tensorflow/tfjs-core/dist/register_all_gradients');
    } finally {
      unregister();
    }
  })();
  return gradientsRegistered;
}

let wasmRegistered = false;

async function registerWasm(): Promise<void> {
  if (wasmRegistered) return;
  // The wasm backend looks for its .wasm binaries next to the page in browsers; under Node point it at the
  // package's dist/ folder explicitly so it works from any working directory.
  const require = createRequire(import.meta.url);
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  setWasmPaths(dist + path.sep);
  // Emscripten installs process-wide uncaughtException/unhandledRejection handlers that rethrow and print
  // the whole minified module on any later error; remove the ones it adds so our errors stay readable.
  const before = {
    uncaughtException: process.listeners('uncaughtException'),
    unhandledRejection: process.listeners('unhandledRejection'),
  };
  await import('@tensorflow/tfjs-backend-wasm');
  guardWasmKernels();
  await captureWasmStderr(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });
  guardWasmHeap((tf.backend() as unknown as { wasm: Parameters<typeof guardWasmHeap>[0] }).wasm, WASM_HEAP_BYTES);
  for (const listener of process.listeners('uncaughtException')) {
    if (!before.uncaughtException.includes(listener)) process.removeListener('uncaughtException', listener);
  }
  for (const listener of process.listeners('unhandledRejection')) {
    if (!before.unhandledRejection.includes(listener)) process.removeListener('unhandledRejection', listener);
  }
  wasmRegistered = true;
}

async function registerNative(): Promise<void> {
  // Preferred: the tfjs-node that tools/native-tf/setup-native-tf.mjs builds into $DRO_CACHE/native-tf
  // (not a repo dependency, so imported by absolute path); it registers the backend on import.
  const { resolveNativeTfjsNode, loadNativeTfjsNode, SETUP_HINT } = await import('./native/tfjs-node.mjs');
  if (resolveNativeTfjsNode() !== null) {
    await loadNativeTfjsNode(tf);
    return;
  }
  // Otherwise an installed @tensorflow/tfjs-node(-gpu); dynamic import by a computed name: both are optional.
  const candidates = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];
  const failures: string[] = [];
  for (const pkg of candidates) {
    try {
      await import(/* @vite-ignore */ pkg);
      return;
    } catch (err) {
      failures.push(`${pkg}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new BackendError(
    `tfjs backend "tensorflow" needs the native TensorFlow build (${SETUP_HINT}) or an installed @tensorflow/tfjs-node(-gpu) ` +
      `(${failures.join('; ')}). Use ${BACKEND_ENV}=wasm (default) or cpu instead.`,
  );
}

/** Whether the wasm backend runs with SIMD and threads (after initBackend('wasm')). */
export async function wasmFeatures(): Promise<{ simd: boolean; threads: boolean }> {
  return {
    simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
    threads: Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')),
  };
}
