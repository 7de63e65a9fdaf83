/**
 * Kernel tuning for the native 'tensorflow' backend (tfjs-node over libtensorflow), installed once by
 * backend.ts when that backend is activated. Decoding one token is ~1,000 small ops, so what each op costs
 * beyond its arithmetic decides decode speed; two such costs are removed here (measured with
 * `npm run bench:llm` and tf.profile on SmolLM2):
 *
 * 1. tfjs-node runs every matMul as TensorFlow's BatchMatMulV2, which the tensorflow-cpu wheel hands to
 *    oneDNN. oneDNN is the faster kernel for large products (prefill, training: ~10 % over Eigen on this
 *    2-core machine) but costs ~100 µs of fixed overhead per call, which dominated decoding. BatchMatMulV3
 *    (same semantics, typed operands) is not rewritten to oneDNN and runs on Eigen: 14 µs instead of 123 µs
 *    for a decode-step attention product, ~230 µs instead of ~500 µs for a cold 1×576×1536 projection. So
 *    products with few rows or columns (decode steps, RMSNorm's mean column) take V3; the rest keep
 *    tfjs-node's kernel.
 * 2. tfjs-node's Reshape, Transpose, Slice, Reverse, Concat and SplitV kernels upload their shape / perm /
 *    begin / axis arguments as fresh int32 tensors on every call (a tensor created, uploaded and deleted per
 *    op). Those arguments repeat from step to step, so they are kept here as constant tensors, uploaded once.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Products with at most this many rows or columns (per batch entry) run on Eigen (BatchMatMulV3). */
export const SMALL_MATMUL_ROWS = 4;

/** Distinct int32 argument tensors kept (shapes of a run repeat; beyond this, arguments are uploaded per call). */
const MAX_CONSTANTS = 4096;

interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}

interface NativeBackend {
  binding: { TF_ATTR_BOOL: number; TF_ATTR_TYPE: number; TF_ATTR_INT: number; TF_FLOAT: number; TF_INT32: number; TF_BOOL: number };
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: tf.TensorInfo[]): tf.TensorInfo;
  executeMultipleOutputs(name: string, attrs: OpAttr[], inputs: tf.TensorInfo[], numOutputs: number): tf.TensorInfo[];
  write(values: Int32Array, shape: number[], dtype: tf.DataType): tf.DataId;
  disposeData(dataId: tf.DataId): boolean;
}

/**
 * int32 argument tensors by value. They live in the backend only (backend.write), not in the tfjs engine,
 * so they never show in tf.memory() and no tidy can dispose them; the first op that uses one uploads it.
 */
const constants = new Map<string, tf.TensorInfo>();

/** An int32 argument tensor (vector, or scalar when `scalar`) with these values; `owned` ones are the caller's to free. */
function int32Constant(backend: NativeBackend, values: readonly number[], scalar: boolean): { info: tf.TensorInfo; owned: boolean } {
  const key = `${scalar ? 's' : 'v'}${values.join(',')}`;
  const cached = constants.get(key);
  if (cached !== undefined) return { info: cached, owned: false };
  const shape = scalar ? [] : [values.length];
  const info: tf.TensorInfo = { dataId: backend.write(Int32Array.from(values), shape, 'int32'), shape, dtype: 'int32' };
  if (constants.size >= MAX_CONSTANTS) return { info, owned: true };
  constants.set(key, info);
  return { info, owned: false };
}

/** Run `op` with int32 argument tensors for `args`, freeing only arguments that are not cached. */
function withConstants<T>(backend: NativeBackend, args: { values: readonly number[]; scalar?: boolean }[], run: (tensors: tf.TensorInfo[]) => T): T {
  const made = args.map((a) => int32Constant(backend, a.values, a.scalar ?? false));
  try {
    return run(made.map((m) => m.info));
  } finally {
    for (const m of made) if (m.owned) backend.disposeData(m.info.dataId);
  }
}

function tfType(backend: NativeBackend, dtype: tf.DataType): number | null {
  const { TF_FLOAT, TF_INT32, TF_BOOL } = backend.binding;
  return dtype === 'float32' ? TF_FLOAT : dtype === 'int32' ? TF_INT32 : dtype === 'bool' ? TF_BOOL : null;
}

/**
 * Replace tfjs-node's kernel `name` with `impl`; impl returns null to defer to the original (dtypes it does
 * not handle).
 */
interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  attrs: tf.NamedAttrMap;
  backend: NativeBackend;
}

function override(name: string, impl: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[] | null): void {
  const original = tf.getKernel(name, 'tensorflow');
  if (original === undefined) return;
  tf.unregisterKernel(name, 'tensorflow');
  tf.registerKernel({
    kernelName: name,
    backendName: 'tensorflow',
    kernelFunc: (args) => impl(args as unknown as KernelArgs) ?? original.kernelFunc(args),
  });
}

let tuned = false;

/** Install the tuned kernels on the 'tensorflow' backend (idempotent; a no-op without tfjs-node). */
export function tuneNativeKernels(): void {
  if (tuned || tf.getKernel(tf.BatchMatMul, 'tensorflow') === undefined) return;
  tuned = true;
  const typeAttr = (backend: NativeBackend, name: string, dtype: tf.DataType): OpAttr | null => {
    const type = tfType(backend, dtype);
    return type === null ? null : { name, type: backend.binding.TF_ATTR_TYPE, value: type };
  };
  const int32Attr = (backend: NativeBackend, name: string): OpAttr => ({ name, type: backend.binding.TF_ATTR_TYPE, value: backend.binding.TF_INT32 });

  override(tf.BatchMatMul, ({ inputs, attrs, backend }) => {
    const { a, b } = inputs;
    const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
    const rows = a.shape[a.shape.length - (transposeA ? 1 : 2)];
    const cols = b.shape[b.shape.length - (transposeB ? 2 : 1)];
    if (Math.min(rows, cols) > SMALL_MATMUL_ROWS || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
    const { TF_ATTR_BOOL, TF_ATTR_TYPE, TF_FLOAT } = backend.binding;
    return backend.executeSingleOutput('BatchMatMulV3', [
      { name: 'Ta', type: TF_ATTR_TYPE, value: TF_FLOAT },
      { name: 'Tb', type: TF_ATTR_TYPE, value: TF_FLOAT },
      { name: 'Tout', type: TF_ATTR_TYPE, value: TF_FLOAT },
      { name: 'adj_x', type: TF_ATTR_BOOL, value: transposeA },
      { name: 'adj_y', type: TF_ATTR_BOOL, value: transposeB },
    ], [a, b]);
  });

  /**
   * Ops of one tensor `x` plus int32 vector arguments (TensorFlow takes them as inputs, tfjs as attrs):
   * `argsOf` maps the tfjs attrs to the vectors, `indexAttr` names TensorFlow's int type attribute.
   */
  const withVectorArguments = (kernel: string, op: string, indexAttr: string, argsOf: (x: tf.TensorInfo, attrs: tf.NamedAttrMap) => number[][]): void =>
    override(kernel, ({ inputs, attrs, backend }) => {
      const { x } = inputs;
      const t = typeAttr(backend, 'T', x.dtype);
      if (t === null) return null;
      const args = argsOf(x, attrs).map((values) => ({ values }));
      return withConstants(backend, args, (tensors) => backend.executeSingleOutput(op, [t, int32Attr(backend, indexAttr)], [x, ...tensors]));
    });
  withVectorArguments(tf.Reshape, 'Reshape', 'Tshape', (_, attrs) => [(attrs as unknown as tf.ReshapeAttrs).shape]);
  withVectorArguments(tf.Transpose, 'Transpose', 'Tperm', (_, attrs) => [(attrs as unknown as tf.TransposeAttrs).perm]);
  withVectorArguments(tf.Reverse, 'ReverseV2', 'Tidx', (x, attrs) => [tf.util.parseAxisParam((attrs as unknown as tf.ReverseAttrs).dims, x.shape)]);
  withVectorArguments(tf.Slice, 'Slice', 'Index', (x, attrs) => {
    const { begin, size } = attrs as unknown as tf.SliceAttrs;
    return tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  });

  override(tf.Concat, ({ inputs, attrs, backend }) => {
    const tensors = Object.values(inputs) as tf.TensorInfo[];
    const t = typeAttr(backend, 'T', tensors[0].dtype);
    if (t === null || tensors.some((x) => x.dtype !== tensors[0].dtype)) return null;
    const axis = tf.util.parseAxisParam((attrs as unknown as tf.ConcatAttrs).axis, tensors[0].shape)[0];
    return withConstants(backend, [{ values: [axis], scalar: true }], ([a]) =>
      backend.executeSingleOutput('ConcatV2', [{ name: 'N', type: backend.binding.TF_ATTR_INT, value: tensors.length }, int32Attr(backend, 'Tidx'), t], [...tensors, a]));
  });

  override(tf.SplitV, ({ inputs, attrs, backend }) => {
    const { x } = inputs;
    const t = typeAttr(backend, 'T', x.dtype);
    if (t === null) return null;
    const { numOrSizeSplits, axis } = attrs as unknown as tf.SplitVAttrs;
    const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, $axis);
    return withConstants(backend, [{ values: sizes }, { values: [$axis], scalar: true }], ([s, a]) =>
      backend.executeMultipleOutputs('SplitV', [{ name: 'num_split', type: backend.binding.TF_ATTR_INT, value: sizes.length }, t, int32Attr(backend, 'Tlen')], [x, s, a], sizes.length));
  });
}
