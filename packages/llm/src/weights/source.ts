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

/** Checks that the file has every weight the config implies, with the right shape. */
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
