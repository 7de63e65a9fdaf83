/**
 * Finds the @tensorflow/tfjs-node that tools/native-tf/setup-native-tf.mjs built into $DRO_CACHE/native-tf.
 * The repo never lists tfjs-node as a dependency (npm ci must not need it), so the `tensorflow` backend is
 * imported from this absolute path instead of by package name. The runtime owns this file (it is what the
 * runtime reads); it is plain ESM (its one import beyond node: is $DRO_CACHE from @dro/artifacts/user-paths),
 * types in tfjs-node.d.mts, so the plain-node setup script imports the prefix layout (NATIVE_TF_DIR,
 * MANIFEST_FILE) from here too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { droCacheDir } from '@dro/artifacts/user-paths';

/** Where setup builds the prefix, relative to $DRO_CACHE, and the manifest it writes last (entry, bindingPath). */
export const NATIVE_TF_DIR = 'native-tf';
export const MANIFEST_FILE = 'native-tf.json';

/**
 * The two native builds: `cpu` (backend `tensorflow`: tfjs-node on the tensorflow-cpu wheel, built by default)
 * and `gpu` (backend `tensorflow-gpu`: tfjs-node-gpu on the GPU-enabled tensorflow wheel and the CUDA pip
 * packages, opt-in). Each has its own prefix, so both can be installed and a process loads one.
 */
export const NATIVE_TF_VARIANTS = {
  cpu: {
    dir: NATIVE_TF_DIR,
    setupHint: 'run `node tools/native-tf/setup-native-tf.mjs` (or `npm run setup -- --native-tf`) first',
  },
  gpu: {
    dir: 'native-tf-gpu',
    setupHint: 'run `node tools/setup/setup.mjs --gpu` (tfjs-node-gpu on the tensorflow GPU wheel and CUDA pip packages, ~4 GB) first',
  },
};

export const SETUP_HINT = NATIVE_TF_VARIANTS.cpu.setupHint;

function variantOf(name) {
  const variant = NATIVE_TF_VARIANTS[name];
  if (variant === undefined) throw new Error(`unknown native TensorFlow build "${name}" (expected ${Object.keys(NATIVE_TF_VARIANTS).join(' or ')})`);
  return variant;
}

/** $DRO_CACHE/native-tf (cpu) or $DRO_CACHE/native-tf-gpu: the isolated npm prefix holding tfjs-node and the TensorFlow libraries. */
export function nativeTfDir(variant = 'cpu') {
  return path.join(droCacheDir(), variantOf(variant).dir);
}

/** Absolute path of the built tfjs-node's entry module, or null when the setup step has not completed. */
export function resolveNativeTfjsNode(variant = 'cpu') {
  const dir = nativeTfDir(variant);
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
  } catch {
    return null; // the manifest is written last, so without it the build did not finish
  }
  const entry = path.join(dir, manifest.entry);
  return fs.existsSync(entry) && fs.existsSync(path.join(dir, manifest.bindingPath)) ? entry : null;
}

/**
 * Imports the built tfjs-node, which registers the `tensorflow` backend and makes it current.
 *
 * `tf` is the caller's @tensorflow/tfjs-core (same version as tfjs-node's copy: setup checks). Both copies
 * share tfjs's global engine and kernel registry, so tfjs-node's bundled tfjs-backend-cpu re-registers the
 * same cpu kernels and tfjs logs ~170 "already registered" warnings; the PROD flag mutes tfjs's logging for
 * the import only. TF_CPP_MIN_LOG_LEVEL=1 (unless set) drops TensorFlow's start-up INFO lines; for the GPU
 * build 3, since without a GPU its CUDA probe logs errors ("failed call to cuInit") before the runtime can
 * say so in one line of its own (set TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's diagnostics).
 */
export async function loadNativeTfjsNode(tf, variant = 'cpu') {
  const entry = resolveNativeTfjsNode(variant);
  if (!entry) throw new Error(`the native TensorFlow backend is not installed in ${nativeTfDir(variant)}: ${variantOf(variant).setupHint}`);
  process.env.TF_CPP_MIN_LOG_LEVEL ??= variant === 'gpu' ? '3' : '1';
  const wasProd = tf.env().getBool('PROD');
  tf.env().set('PROD', true);
  try {
    return await import(pathToFileURL(entry).href);
  } finally {
    tf.env().set('PROD', wasProd);
  }
}
