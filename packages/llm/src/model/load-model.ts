/** loadModel: a GGUF file or HF directory → a ready ChatModel (weights uploaded one tensor at a time). */
import { loadWeights } from '../weights/load.ts';
import { ModelFormatError } from '../weights/errors.ts';
import { loadTokenizer } from '../tokenizer/tokenizer.ts';
import { ChatTemplate } from '../template/chat-template.ts';
import { initBackend } from '../backend.ts';
import { ChatModel, createChatModel, weightBytes, type ChatTemplateFn } from './chat-model.ts';
import { checkModelFits } from './memory-budget.ts';

export interface LoadModelOptions {
  /**
   * tfjs backend ('wasm' | 'cpu' | 'tensorflow'). The process's backend is chosen once (the first model
   * loaded, or initBackend): default $DRO_TFJS_BACKEND, else auto; naming a different one later throws.
   */
  backend?: string;
}

export async function loadModel(modelPath: string, options: LoadModelOptions = {}): Promise<ChatModel> {
  const loaded = loadWeights(modelPath);
  // The process's backend (chosen once; see backend.ts), and whether the model can fit it at all — before
  // a single weight is uploaded.
  const backend = await initBackend(options.backend);
  checkModelFits(backend, weightBytes(loaded.tensors), modelPath);
  const tokenizer = loadTokenizer(modelPath, loaded.gguf ?? undefined);
  const template = tokenizer.chatTemplate === null ? null : ChatTemplate.of(tokenizer);
  const applyChatTemplate: ChatTemplateFn = (messages, opts) => {
    if (template === null) throw new ModelFormatError(tokenizer.source, 'the model has no chat template');
    return template.applyChatTemplate(messages, opts);
  };
  return createChatModel({
    config: loaded.config,
    weights: loaded.tensors,
    tokenizer,
    applyChatTemplate,
    chatTemplate: template,
    digest: loaded.digest,
    backend,
  });
}
