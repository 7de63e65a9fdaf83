/** loadModel: a GGUF file or HF directory → a ready ChatModel (weights uploaded one tensor at a time). */
import { loadWeights } from '../weights/load.ts';
import { ModelFormatError } from '../weights/errors.ts';
import { loadTokenizer } from '../tokenizer/tokenizer.ts';
import { ChatTemplate } from '../template/chat-template.ts';
import { ChatModel, createChatModel, type ChatTemplateFn } from './chat-model.ts';

export interface LoadModelOptions {
  /** tfjs backend ('wasm' | 'cpu' | 'tensorflow'); default $DRO_TFJS_BACKEND or 'wasm'. */
  backend?: string;
}

export async function loadModel(modelPath: string, options: LoadModelOptions = {}): Promise<ChatModel> {
  const loaded = loadWeights(modelPath);
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
    backend: options.backend,
  });
}
