/**
 * WeightSource: a model's weights under their Hugging Face names, read one tensor at a time as float32 in
 * HF (row-major, [out, in]) layout. The model uploads each tensor and drops the JS copy before reading the
 * next, so loading never holds two float copies of the whole model.
 */
import { expectedWeightShapes, type ModelConfig } from '../config.ts';
import { ModelFormatError } from './errors.ts';

export interface WeightInfo {
  /** HF row-major shape, e.g. [numHeads * headDim, hiddenSize] for q_proj. */
  shape: number[];
  /** How the tensor is stored in the file: a ggml type ("Q4_1", "F32") or a safetensors dtype ("BF16"). */
  storedAs: string;
}

export interface WeightSource {
  /** Every weight the model needs, HF names, in a stable order. With tied embeddings there is no lm_head. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): WeightInfo;
  /** A fresh float32 copy of one tensor (the caller owns it). Throws ModelFormatError on NaN/Inf values. */
  read(name: string): Float32Array;
}

/** Where the config's sizes come from, to name the field in errors (e.g. "llama.block_count", "num_hidden_layers"). */
export interface ConfigFields {
  numLayers: string;
  vocabSize: string;
  hiddenSize: string;
}

/**
 * Bounds the config's sizes by the tensors the file really has, before anything is sized by them: a
 * layer count of 1e8 would otherwise build 1e9 expected-weight entries (20 s, 2.5 GB, then a RangeError).
 * The layer count must equal the number of layers with weights (indices 0..n-1); vocabulary and hidden
 * size must match the embedding matrix. `hfNames` are the file's weights under their HF names.
 */
export function checkConfigAgainstTensors(
  config: ModelConfig,
  hfNames: Iterable<string>,
  shapeOf: (name: string) => number[] | undefined,
  file: string,
  fields: ConfigFields,
): void {
  const layers = new Set<number>();
  for (const name of hfNames) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) layers.add(Number(m[1]));
  }
  const present = [...layers].sort((a, b) => a - b);
  const describe = present.length === 0 ? 'no layer weights' : `weights for ${present.length} layer(s) (indices ${present[0]}..${present[present.length - 1]})`;
  if (config.numLayers !== present.length) {
    throw new ModelFormatError(file, `${fields.numLayers} is ${config.numLayers} but the file has ${describe}`);
  }
  const missing = present.findIndex((layer, i) => layer !== i);
  if (missing >= 0) throw new ModelFormatError(file, `the file has ${describe} but none for layer ${missing}`);
  const embedding = shapeOf('model.embed_tokens.weight');
  if (embedding === undefined) throw new ModelFormatError(file, 'missing weight "model.embed_tokens.weight"');
  if (embedding.length !== 2 || embedding[0] !== config.vocabSize || embedding[1] !== config.hiddenSize) {
    throw new ModelFormatError(
      file,
      `${fields.vocabSize} ${config.vocabSize} × ${fields.hiddenSize} ${config.hiddenSize} disagree with the embedding matrix [${embedding.join(', ')}]`,
    );
  }
}

/** Checks that the file has every weight the config implies, with the right shape (after checkConfigAgainstTensors). */
export function checkWeightShapes(config: ModelConfig, shapeOf: (name: string) => number[] | undefined, file: string): void {
  for (const [name, expected] of expectedWeightShapes(config)) {
    const actual = shapeOf(name);
    if (actual === undefined) throw new ModelFormatError(file, `missing weight "${name}"`);
    if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
      throw new ModelFormatError(
        file,
        `weight "${name}" has shape [${actual.join(', ')}] but the config implies [${expected.join(', ')}]`,
      );
    }
  }
}

/** Throws if any value is NaN or ±Inf (a corrupt or badly converted checkpoint). */
export function assertFinite(values: Float32Array, name: string, file: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new ModelFormatError(file, `weight "${name}" contains ${values[i]} at element ${i} (corrupt weights)`);
    }
  }
}
