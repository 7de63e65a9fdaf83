/**
 * The models setup fetches into $DRO_CACHE/models (listed in known-models.mjs): their paths, lookup by id,
 * and errors that say how to fetch a missing one. Tests use these too, and must not silently skip.
 */
import fs from 'node:fs';
import path from 'node:path';
import { droCacheDir } from '@dro/artifacts';
import { KNOWN_MODELS, type KnownModel } from './known-models.mjs';

export { KNOWN_MODELS, type KnownModel };

const SETUP_COMMAND = '`node tools/setup/setup.mjs`';

export function knownModel(id: string): KnownModel {
  const model = KNOWN_MODELS.find((m) => m.id === id);
  if (!model) throw new Error(`no known model "${id}" (known: ${KNOWN_MODELS.map((m) => m.id).join(', ')})`);
  return model;
}

/** Where setup puts a known model (present or not). */
export function knownModelPath(id: string): string {
  return path.join(droCacheDir(), 'models', knownModel(id).file);
}

/** The known model's path, or an error naming the file and the setup command that fetches it. */
export function requireKnownModel(id: string): string {
  const file = knownModelPath(id);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run ${SETUP_COMMAND} first (it fetches ${knownModel(id).name})`);
  return file;
}

/**
 * A `--model` argument: a known model's id ("qwen2.5-coder-0.5b") or a path to a GGUF file or HF
 * directory. An id wins only when no file of that name exists in the working directory.
 */
export function resolveModelArgument(arg: string): string {
  const known = KNOWN_MODELS.find((m) => m.id === arg);
  if (known && !fs.existsSync(arg)) return knownModelPath(known.id);
  return arg;
}

export const SMOLLM2_ID = 'smollm2-135m';
export const QWEN_ID = 'qwen2.5-coder-0.5b';
/** The model `dro run` and the `dro llm` commands use when none is named: one that refuses. */
export const DEFAULT_MODEL_ID = QWEN_ID;

export function defaultModelPath(): string {
  return knownModelPath(DEFAULT_MODEL_ID);
}
export const SMOLLM2_GGUF_NAME = knownModel(SMOLLM2_ID).file;

export function smolLm2GgufPath(): string {
  return knownModelPath(SMOLLM2_ID);
}

/** The SmolLM2 GGUF path, or an error telling the user how to fetch it. */
export function requireSmolLm2Gguf(): string {
  return requireKnownModel(SMOLLM2_ID);
}
