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
