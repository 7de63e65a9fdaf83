/**
 * Pinned inputs of the native TensorFlow backend build (see README.md in this folder).
 *
 * tfjs-node 4.22.0's addon was written against the libtensorflow 2.9 C API. TensorFlow keeps the TF_* and
 * TFE_* C functions backward compatible, and the official tensorflow-cpu wheel ships them in
 * libtensorflow_cc.so.2 (no Python dependency: its NEEDED list is libtensorflow_framework.so.2 + libc/libstdc++),
 * with the C headers under tensorflow/include/. So the addon builds from tfjs-node's published source
 * against the wheel, with no download outside the npm registry and PyPI.
 */

/** The npm package whose JS and binding source we use; must match the repo's @tensorflow/tfjs-core. */
export const TFJS_NODE = { name: '@tensorflow/tfjs-node', version: '4.22.0' };

/**
 * The wheel is named by exact tags (not by the local python3), so every machine fetches the same file.
 * Only shared libraries and C headers are taken from it; the Python parts are never used.
 */
export const TENSORFLOW_WHEEL = {
  package: 'tensorflow-cpu',
  version: '2.20.0',
  pythonVersion: '311',
  implementation: 'cp',
  abi: 'cp311',
  platform: 'manylinux_2_17_x86_64',
  file: 'tensorflow_cpu-2.20.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
  sha256: 'cf756bbe2d256e942ab5d0ad2c858fb40017581494febdb4387c149b1afde780',
};

/** Wheel members copied to tfjs-node's deps/lib (where its binding.gyp links and its rpath looks). */
export const TENSORFLOW_LIBRARIES = [
  {
    member: 'tensorflow/libtensorflow_cc.so.2',
    sha256: 'b5fd7ea6fe0f0a15ef1d08e72066b5cf1bad57feed14616efd26f8b4a7d3e375',
    // binding.gyp links `-ltensorflow`; the linker records this library's SONAME (libtensorflow_cc.so.2).
    linkName: 'libtensorflow.so',
  },
  {
    member: 'tensorflow/libtensorflow_framework.so.2',
    sha256: '90ff47639b9ca14ad097adbeba9e2f84528b7d5ea9ab49b1f7b568d39e2ed15a',
    linkName: 'libtensorflow_framework.so',
  },
];

/**
 * Header subtrees (below tensorflow/include/ in the wheel) that the binding's #includes reach: the C API,
 * its status type (moved to xla/tsl), and the header-only TF_TString helpers the binding calls inline.
 */
export const TENSORFLOW_HEADER_PREFIXES = [
  'tensorflow/c/',
  'xla/tsl/c/',
  'tensorflow/core/platform/ctstring',
  'tsl/platform/ctstring',
];

/**
 * The GPU variant (`node tools/setup/setup.mjs --gpu`, backend `tensorflow-gpu`): the same binding source as
 * published in @tensorflow/tfjs-node-gpu, built against the `tensorflow` wheel — the GPU-enabled build. Its
 * libtensorflow_cc.so.2 NEEDs no CUDA library (`readelf -d`): TensorFlow dlopens CUDA at start-up through the
 * runpath `$ORIGIN/../nvidia/<package>/lib`, which is where setup lays out the CUDA pip packages below
 * (deps/lib/../nvidia = deps/nvidia). Without a GPU (or its driver) the library loads and finds no device.
 */
export const TFJS_NODE_GPU = { name: '@tensorflow/tfjs-node-gpu', version: '4.22.0' };

export const TENSORFLOW_GPU_WHEEL = {
  package: 'tensorflow',
  version: '2.20.0',
  pythonVersion: '311',
  implementation: 'cp',
  abi: 'cp311',
  platform: 'manylinux_2_17_x86_64',
  file: 'tensorflow-2.20.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
  sha256: '481499fd0f824583de8945be61d5e827898cdaa4f5ea1bc2cc28ca2ccff8229e',
};

export const TENSORFLOW_GPU_LIBRARIES = [
  { member: 'tensorflow/libtensorflow_cc.so.2', sha256: '21affb58d89c44b7471d83cbaa4284a00342005b9180053b13095693ab0436d5', linkName: 'libtensorflow.so' },
  { member: 'tensorflow/libtensorflow_framework.so.2', sha256: 'b03dd68841873ae161e5d4f9e32326233e39924e962199efad3e86277cbac544', linkName: 'libtensorflow_framework.so' },
];

/**
 * The CUDA libraries as pip packages: the tensorflow 2.20.0 wheel's `and-cuda` extra (Requires-Dist in its
 * METADATA), each resolved by pip to the newest release in its range on 2026-11-30 and pinned here. Each
 * wheel's `nvidia/` tree (lib/*.so*, nvcc's bin/ptxas) goes to tfjs-node's deps/nvidia/. 2.7 GB of wheels.
 */
export const CUDA_WHEELS = [
  ['nvidia-cublas-cu12', '12.9.3.13', 'nvidia_cublas_cu12-12.9.3.13-py3-none-manylinux_2_27_x86_64.whl', 'd7d51055f161b317c7105ddaae90e71eda059026074ffef93cf7cde2886bfe72'],
  ['nvidia-cuda-cupti-cu12', '12.8.90', 'nvidia_cuda_cupti_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl', 'ea0cb07ebda26bb9b29ba82cda34849e73c166c18162d3913575b0c9db9a6182'],
  ['nvidia-cuda-nvcc-cu12', '12.9.86', 'nvidia_cuda_nvcc_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl', '5d6a0d32fdc7ea39917c20065614ae93add6f577d840233237ff08e9a38f58f0'],
  ['nvidia-cuda-nvrtc-cu12', '12.9.86', 'nvidia_cuda_nvrtc_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl', '210cf05005a447e29214e9ce50851e83fc5f4358df8b453155d5e1918094dcb4'],
  ['nvidia-cuda-runtime-cu12', '12.9.79', 'nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl', '25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3'],
  ['nvidia-cudnn-cu12', '9.28.0.42', 'nvidia_cudnn_cu12-9.28.0.42-py3-none-manylinux_2_27_x86_64.whl', '9ff58b7f36dacd0a93e89f8f2957b52466889217963701daa15e577317cfa375'],
  ['nvidia-cufft-cu12', '11.4.1.4', 'nvidia_cufft_cu12-11.4.1.4-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl', 'c67884f2a7d276b4b80eb56a79322a95df592ae5e765cf1243693365ccab4e28'],
  ['nvidia-curand-cu12', '10.3.10.19', 'nvidia_curand_cu12-10.3.10.19-py3-none-manylinux_2_27_x86_64.whl', '49b274db4780d421bd2ccd362e1415c13887c53c214f0d4b761752b8f9f6aa1e'],
  ['nvidia-cusolver-cu12', '11.7.5.82', 'nvidia_cusolver_cu12-11.7.5.82-py3-none-manylinux_2_27_x86_64.whl', '15da72d1340d29b5b3cf3fd100e3cd53421dde36002eda6ed93811af63c40d88'],
  ['nvidia-cusparse-cu12', '12.5.10.65', 'nvidia_cusparse_cu12-12.5.10.65-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl', '73060ce019ac064a057267c585bf1fd5a353734151f87472ff02b2c5c9984e78'],
  ['nvidia-nccl-cu12', '2.32.3', 'nvidia_nccl_cu12-2.32.3-py3-none-manylinux_2_27_x86_64.whl', 'bb94b2348e4861d5e8aa00b36c3d12d9bdf9c6369b82cbb723de0b582280a21c'],
  ['nvidia-nvjitlink-cu12', '12.9.86', 'nvidia_nvjitlink_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl', 'e3f1171dbdc83c5932a45f0f4c99180a70de9bd2718c1ab77d14104f6d7147f9'],
].map(([name, version, file, sha256]) => ({ name, version, file, sha256 }));

/** The two builds setup-native-tf.mjs knows; `dir` comes from the runtime (tfjs-node.mjs NATIVE_TF_VARIANTS). */
export const BUILD_VARIANTS = {
  cpu: { tfjsNode: TFJS_NODE, prefixFiles: ['prefix.package.json', 'prefix.package-lock.json'], wheel: TENSORFLOW_WHEEL, libraries: TENSORFLOW_LIBRARIES, cuda: [] },
  gpu: { tfjsNode: TFJS_NODE_GPU, prefixFiles: ['prefix-gpu.package.json', 'prefix-gpu.package-lock.json'], wheel: TENSORFLOW_GPU_WHEEL, libraries: TENSORFLOW_GPU_LIBRARIES, cuda: CUDA_WHEELS },
};
