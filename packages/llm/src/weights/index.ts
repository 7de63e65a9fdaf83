export { loadWeights, loadModelConfig, type LoadedWeights, type WeightFormat } from './load.ts';
export type { WeightInfo, WeightSource } from './source.ts';
export { GgufFile, type GgufTensorInfo, type GgufValue } from './gguf.ts';
export { dequantize, GgmlType, ggmlTypeName, DEQUANTIZABLE_TYPES } from './dequant.ts';
export { hfNameOfGgufTensor, unpermuteRotaryRows } from './gguf-weights.ts';
export { ModelFormatError } from './errors.ts';
export { fileDigest, modelDigest } from './digest.ts';
export {
  KNOWN_MODELS, type KnownModel, knownModel, knownModelPath, requireKnownModel, resolveModelArgument,
  SMOLLM2_ID, QWEN_ID, DEFAULT_MODEL_ID, defaultModelPath, smolLm2GgufPath, requireSmolLm2Gguf, SMOLLM2_GGUF_NAME,
} from './assets.ts';
export { inspectModel, type ModelSummary } from './inspect.ts';
