/** loadModel: a GGUF file or HF directory → a ready ChatModel (weights uploaded one tensor at a time). */
import { loadWeights, type LoadedWeights } from '../weights/load.ts';
import { ModelFormatError } from '../weights/errors.ts';
import { loadTokenizer } from '../tokenizer/tokenizer.ts';
import { ChatTemplate } from '../template/chat-template.ts';
import { initBackend, type BackendName } from '../backend.ts';
import { createChatModel, weightBytes, type ChatModel, type ChatTemplateFn } from './chat-model.ts';
import { checkModelFits } from './memory-budget.ts';

export interface LoadModelOptions {
  /**
   * tfjs backend ('wasm' | 'cpu' | 'tensorflow'). The process's backend is chosen once (the first model
   * loaded, or initBackend): default $DRO_TFJS_BACKEND, else auto; naming a different one later throws.
   */
  backend?: string;
}

/**
 * A model file opened and checked, nothing uploaded yet: its weights (config, tensor index, and the content
 * digest on first read), the process's backend, and the certainty that it fits that backend's memory.
 * What a model cache keys on (digest + backend) before deciding to load.
 */
export interface OpenedModel {
  path: string;
  weights: LoadedWeights;
  backend: BackendName;
}

let loads = 0;

/** Models this process has built (uploaded to its backend) so far: how tests count loads. */
export function modelLoads(): number {
  return loads;
}

/** Open and check a model file before anything is uploaded (see OpenedModel). */
export async function openModelFile(modelPath: string, options: LoadModelOptions = {}): Promise<OpenedModel> {
  const weights = loadWeights(modelPath);
  // The process's backend (chosen once; see backend.ts), and whether the model can fit it at all — before
  // a single weight is uploaded (or the file hashed).
  const backend = await initBackend(options.backend);
  checkModelFits(backend, weightBytes(weights.tensors), modelPath);
  return { path: modelPath, weights, backend };
}

/** Upload an opened model's weights and build its tokenizer and template. */
export async function buildModel({ path: modelPath, weights, backend }: OpenedModel): Promise<ChatModel> {
  const tokenizer = loadTokenizer(modelPath, weights.gguf ?? undefined);
  const template = tokenizer.chatTemplate === null ? null : ChatTemplate.of(tokenizer);
  const applyChatTemplate: ChatTemplateFn = (messages, opts) => {
    if (template === null) throw new ModelFormatError(tokenizer.source, 'the model has no chat template');
    return template.applyChatTemplate(messages, opts);
  };
  const model = await createChatModel({
    config: weights.config,
    weights: weights.tensors,
    tokenizer,
    applyChatTemplate,
    chatTemplate: template,
    digest: weights.digest,
    backend,
  });
  loads++;
  return model;
}

export async function loadModel(modelPath: string, options: LoadModelOptions = {}): Promise<ChatModel> {
  return buildModel(await openModelFile(modelPath, options));
}
