/** @dro/llm: the tfjs runtime for Llama-family chat models. */
export { tf, initBackend, activeBackend, isNativeBackend, registerAllGradients, wasmFeatures, BACKEND_ENV, BACKEND_NAMES, BackendError, type BackendName } from './backend.ts';
export {
  ChatModel,
  createChatModel,
  lastTokenHidden,
  type ChatMessage,
  type ChatTemplateFn,
  type ForwardInput,
  type ForwardOutput,
  type LogitsFor,
  type ModelTokenizer,
} from './model/chat-model.ts';
export { buildModel, loadModel, modelLoads, openModelFile, type LoadModelOptions, type OpenedModel } from './model/load-model.ts';
export { padBatch } from './model/mask.ts';
export { generate, type GenerateOptions, type GenerateResult, type GeneratedSequence, type TokenEvent, type FinishReason } from './generate/generate.ts';
export { mulberry32, mixSeed } from './generate/rng.ts';
export * from './weights/index.ts';
export { Tokenizer, loadTokenizer } from './tokenizer/tokenizer.ts';
export type { ModelConfig, Architecture, RopeScaling } from './config.ts';
export { ChatTemplate, type ChatRole, type ChatTemplateOptions, type SystemContentSpan } from './template/chat-template.ts';
export { configFromHf, configFromGguf, expectedWeightShapes, ARCHITECTURES } from './config.ts';
export { tokenizerFilesFromGguf, tokenizerFilesFromHfDir, type HfTokenizerFiles } from './tokenizer/index.ts';
export { spliceSoftPrompt, type PromptedInput } from './model/soft-prompt.ts';
