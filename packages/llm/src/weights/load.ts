/** loadWeights: one entry point for a GGUF file or an HF model directory. */
import fs from 'node:fs';
import path from 'node:path';
import { configFromGguf, type ModelConfig } from '../config.ts';
import { modelDigest } from './digest.ts';
import { ModelFormatError } from './errors.ts';
import { GgufFile } from './gguf.ts';
import { ggufWeightSource } from './gguf-weights.ts';
import { hfConfigOf, safetensorsFilesOf, safetensorsWeightSource } from './safetensors-weights.ts';
import type { WeightSource } from './source.ts';
import { requireRegularFile } from './regular-file.ts';

export type WeightFormat = 'gguf' | 'safetensors';

export interface LoadedWeights {
  config: ModelConfig;
  tensors: WeightSource;
  format: WeightFormat;
  /**
   * sha256 (hex) of the model file, or of the directory's files (see modelDigest). Computed on first read
   * (hashing a large model takes seconds), so a model refused before loading is never hashed.
   */
  readonly digest: string;
  /** Every file the weights, config and tokenizer come from. */
  files: string[];
  /** The parsed GGUF (metadata, tokenizer vocab, chat template) when format is "gguf". */
  gguf: GgufFile | null;
}

/** Tokenizer/config files of an HF directory that change the model's behaviour, hence its digest. */
const HF_SIDE_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json'];

/**
 * Open a model: a .gguf file or an HF directory (config.json + safetensors). Validates the config and
 * every weight's shape up front; tensors are read later, one at a time, through `tensors.read`.
 */
export function loadWeights(modelPath: string): LoadedWeights {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(modelPath);
  } catch (err) {
    throw new ModelFormatError(modelPath, `model not found: ${(err as Error).message}`, { cause: err });
  }
  if (stat.isDirectory()) {
    const config = hfConfigOf(modelPath);
    const weightFiles = safetensorsFilesOf(modelPath);
    const tensors = safetensorsWeightSource(modelPath, config, weightFiles);
    const sideFiles = HF_SIDE_FILES.map((f) => path.join(modelPath, f)).filter((f) => fs.existsSync(f));
    const files = [...sideFiles, ...weightFiles];
    const index = path.join(modelPath, 'model.safetensors.index.json');
    if (fs.existsSync(index)) files.push(index);
    // Every file the digest will read must be a regular file now, not when the digest is first used.
    for (const file of sideFiles) requireRegularFile(file);
    return withLazyDigest({ config, tensors, format: 'safetensors', files, gguf: null }, modelPath);
  }
  if (modelPath.endsWith('.safetensors')) {
    throw new ModelFormatError(modelPath, 'pass the HF model directory (config.json + *.safetensors), not a .safetensors file');
  }
  const gguf = GgufFile.open(modelPath);
  const config = configFromGguf(gguf);
  const tensors = ggufWeightSource(gguf, config);
  return withLazyDigest({ config, tensors, format: 'gguf', files: [modelPath], gguf }, modelPath);
}

/**
 * Only the config of a model (GGUF metadata or config.json), without reading or checking its weights: for
 * callers that need sizes such as the context length (data-prep). `gguf`: the file, already parsed.
 */
export function loadModelConfig(modelPath: string, gguf?: GgufFile): ModelConfig {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(modelPath);
  } catch (err) {
    throw new ModelFormatError(modelPath, `model not found: ${(err as Error).message}`, { cause: err });
  }
  return stat.isDirectory() ? hfConfigOf(modelPath) : configFromGguf(gguf ?? GgufFile.open(modelPath));
}

function withLazyDigest(loaded: Omit<LoadedWeights, 'digest'>, root: string): LoadedWeights {
  let digest: string | null = null;
  return Object.defineProperty(loaded, 'digest', {
    enumerable: true,
    get: () => (digest ??= modelDigest(loaded.files, root)),
  }) as LoadedWeights;
}
