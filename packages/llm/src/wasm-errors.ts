/**
 * Backend errors of the wasm backend, made to fail the call. The wasm module reports some failures only as
 * a line on stderr and carries on: when XNNPACK cannot create or set up an operator it prints
 * "XNN status for xnn_… is not successful. Got status N" and the kernel returns whatever was in its output
 * buffer. Status 6 is out-of-memory — SmolLM2-135M needs ~1.1 GB of the 4 GiB wasm heap (515 MiB of float32
 * weights, then XNNPACK packs its own copy of every matmul weight: 1,127 MiB after the first forward), so
 * a 630M-parameter model runs out and generation went on with garbage, exit 0. Status 4 (unsupported
 * parameter) comes from e.g. a broadcast add over rank-7 tensors.
 *
 * Everything the wasm module writes to stderr is captured here, and every wasm kernel is wrapped: a kernel
 * after which a message is pending disposes its outputs and throws a BackendError naming the kernel and
 * the message. The check runs after the kernel returns (the C++ side has unwound), so the backend stays
 * usable for the next call; it costs one array-length test per kernel.
 *
 * Tensor memory itself fails silently too: tfjs allocates every tensor with the module's malloc, which
 * returns 0 when the 4 GiB heap is full (tfjs then writes the tensor over address 0, corrupting others)
 * and takes its size as an int32 (a 4.8 GB tensor got a 505 MB block). guardWasmHeap makes both throw.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from './backend.ts';

let pending: string[] = [];
let guarded = false;

/** Emscripten's XNNPACK status codes that have a name worth showing. */
const XNN_STATUS: Record<string, string> = { '2': 'invalid parameter', '3': 'invalid state', '4': 'unsupported parameter', '5': 'unsupported hardware', '6': 'out of memory' };

/**
 * Runs `create`, which instantiates the wasm module, with console.warn routed into the capture: the module
 * binds its stderr printer when it is created (`err = Module.printErr || console.warn.bind(console)`, and
 * tfjs passes no printErr), so the binding made now is the one it keeps. Messages printed while the
 * module starts are shown, not held against the first kernel.
 */
export async function captureWasmStderr<T>(create: () => Promise<T>): Promise<T> {
  const original = console.warn;
  console.warn = (...args: unknown[]) => {
    pending.push(args.map(String).join(' '));
  };
  try {
    return await create();
  } finally {
    console.warn = original;
    for (const line of pending) original(line);
    pending = [];
  }
}

function describe(line: string): string {
  const status = /Got status (\d+)/.exec(line)?.[1];
  return status !== undefined && XNN_STATUS[status] ? `${line} (XNNPACK status ${status}: ${XNN_STATUS[status]})` : line;
}

/** Wraps every kernel registered for the wasm backend (call once, before the backend is set up). */
export function guardWasmKernels(): void {
  if (guarded) return;
  guarded = true;
  for (const config of tf.getKernelsForBackend('wasm')) {
    const run = config.kernelFunc;
    tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        const out = run(args);
        if (pending.length > 0) {
          const lines = pending.map(describe);
          pending = [];
          for (const info of (Array.isArray(out) ? out : [out]) as tf.TensorInfo[]) (args.backend as tf.KernelBackend).disposeData(info.dataId);
          throw new BackendError(`tfjs wasm backend failed in kernel ${config.kernelName}: ${lines.join('; ')}`);
        }
        return out;
      },
    });
  }
}

/** The wasm module's view of the heap that tfjs allocates tensors from (backend.wasm). */
interface WasmModule {
  _malloc(bytes: number): number;
  asm?: { malloc?: (bytes: number) => number };
}

/** Makes tensor allocations on the wasm heap throw a BackendError instead of failing silently (see the header). */
export function guardWasmHeap(module: WasmModule, heapBytes: number): void {
  // Emscripten's _malloc replaces itself with the export on first call; wrap the export itself.
  const malloc = module.asm?.malloc ?? module._malloc.bind(module);
  module._malloc = (bytes: number): number => {
    if (bytes >= heapBytes) {
      throw new BackendError(`tfjs wasm backend: a tensor of ${bytes} bytes cannot fit the ${heapBytes / 2 ** 30} GiB wasm heap`);
    }
    const address = malloc(bytes);
    if (address === 0 && bytes > 0) {
      throw new BackendError(`tfjs wasm backend: the ${heapBytes / 2 ** 30} GiB wasm heap is full (a tensor of ${bytes} bytes could not be allocated)`);
    }
    return address;
  };
}

