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

export const SETUP_HINT = 'run `node tools/native-tf/setup-native-tf.mjs` (or `npm run setup -- --native-tf`) first';

/** $DRO_CACHE/native-tf, the isolated npm prefix holding tfjs-node and the TensorFlow libraries. */
export function nativeTfDir() {
  return path.join(droCacheDir(), NATIVE_TF_DIR);
}

/** Absolute path of the built tfjs-node's entry module, or null when the setup step has not completed. */
export function resolveNativeTfjsNode() {
  const dir = nativeTfDir();
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
 * the import only. TF_CPP_MIN_LOG_LEVEL=1 (unless set) drops TensorFlow's start-up INFO lines.
 */
export async function loadNativeTfjsNode(tf) {
  const entry = resolveNativeTfjsNode();
  if (!entry) throw new Error(`the native TensorFlow backend is not installed in ${nativeTfDir()}: ${SETUP_HINT}`);
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  const wasProd = tf.env().getBool('PROD');
  tf.env().set('PROD', true);
  try {
    return await import(pathToFileURL(entry).href);
  } finally {
    tf.env().set('PROD', wasProd);
  }
}
