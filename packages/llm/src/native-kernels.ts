/**
 * Kernel tuning for the native 'tensorflow' backend (tfjs-node over libtensorflow), installed once by
 * backend.ts when that backend is activated.
 *
 * tfjs-node runs every matMul as TensorFlow's BatchMatMulV2, which the tensorflow-cpu wheel hands to
 * oneDNN. oneDNN is the faster kernel for large products (prefill, training: ~10 % over Eigen on this
 * 2-core machine) but costs ~100 µs of fixed overhead per call, which dominates decoding: a token is ~180
 * matmuls with 1-3 rows each (tools/bench, `npm run bench:llm`). BatchMatMulV3 (same semantics, typed
 * operands) is not rewritten to oneDNN and runs on Eigen: 14 µs instead of 123 µs for a decode-step
 * attention product, 90 µs instead of 150 µs for a 1×576×576 projection. So products with few rows take
 * V3, the rest keep tfjs-node's kernel.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Products whose left operand has at most this many rows (per batch entry) run on Eigen (BatchMatMulV3). */
export const SMALL_MATMUL_ROWS = 4;

interface NativeBackend {
  binding: { TF_ATTR_BOOL: number; TF_ATTR_TYPE: number; TF_FLOAT: number };
  executeSingleOutput(name: string, attrs: { name: string; type: number; value: unknown }[], inputs: tf.TensorInfo[]): tf.TensorInfo;
}

let tuned = false;

/** Route small float32 matMuls on the 'tensorflow' backend to BatchMatMulV3 (idempotent). */
export function tuneNativeKernels(): void {
  if (tuned) return;
  const original = tf.getKernel(tf.BatchMatMul, 'tensorflow');
  if (original === undefined) return; // tfjs-node not registered: nothing to tune
  tf.unregisterKernel(tf.BatchMatMul, 'tensorflow');
  tf.registerKernel({
    kernelName: tf.BatchMatMul,
    backendName: 'tensorflow',
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
      const rows = a.shape[a.shape.length - (transposeA ? 1 : 2)];
      if (rows > SMALL_MATMUL_ROWS || a.dtype !== 'float32' || b.dtype !== 'float32') return original.kernelFunc(args);
      const backend = args.backend as unknown as NativeBackend;
      const { TF_ATTR_BOOL, TF_ATTR_TYPE, TF_FLOAT } = backend.binding;
      return backend.executeSingleOutput('BatchMatMulV3', [
        { name: 'Ta', type: TF_ATTR_TYPE, value: TF_FLOAT },
        { name: 'Tb', type: TF_ATTR_TYPE, value: TF_FLOAT },
        { name: 'Tout', type: TF_ATTR_TYPE, value: TF_FLOAT },
        { name: 'adj_x', type: TF_ATTR_BOOL, value: transposeA },
        { name: 'adj_y', type: TF_ATTR_BOOL, value: transposeB },
      ], [a, b]);
    },
  });
  tuned = true;
}
