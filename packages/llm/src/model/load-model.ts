/** loadModel: a GGUF file or HF directory → a ready ChatModel (weights uploaded one tensor at a time). */
import { Template } from '@huggingface/jinja';
import { loadWeights } from '../weights/load.ts';
import { ModelFormatError } from '../weights/errors.ts';
import { loadTokenizer, type Tokenizer } from '../tokenizer/tokenizer.ts';
import { ChatModel, createChatModel, type ChatMessage, type ChatTemplateFn } from './chat-model.ts';

export interface LoadModelOptions {
  /** tfjs backend ('wasm' | 'cpu' | 'tensorflow'); default $DRO_TFJS_BACKEND or 'wasm'. */
  backend?: string;
}

/** The model's own chat template rendered with @huggingface/jinja (HF's variables: messages, bos/eos tokens). */
export function chatTemplateOf(tokenizer: Tokenizer): ChatTemplateFn {
  const source = tokenizer.chatTemplate;
  if (source === null) {
    return () => {
      throw new ModelFormatError(tokenizer.source, 'the model has no chat template');
    };
  }
  let template: Template;
  try {
    template = new Template(source);
  } catch (err) {
    throw new ModelFormatError(tokenizer.source, `chat template does not parse: ${(err as Error).message}`, { cause: err });
  }
  const tokenText = (id: number | null): string => (id === null ? '' : (tokenizer.idToToken(id) ?? ''));
  return (messages: ChatMessage[], options: { addGenerationPrompt: boolean }) =>
    template.render({
      messages,
      add_generation_prompt: options.addGenerationPrompt,
      bos_token: tokenText(tokenizer.bosTokenId),
      eos_token: tokenText(tokenizer.eosTokenId),
    });
}

export async function loadModel(modelPath: string, options: LoadModelOptions = {}): Promise<ChatModel> {
  const loaded = loadWeights(modelPath);
  const tokenizer = loadTokenizer(modelPath, loaded.gguf ?? undefined);
  return createChatModel({
    config: loaded.config,
    weights: loaded.tensors,
    tokenizer,
    applyChatTemplate: chatTemplateOf(tokenizer),
    digest: loaded.digest,
    backend: options.backend,
  });
}
