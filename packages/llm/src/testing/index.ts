/** @dro/llm/testing: tiny random models in the real file formats (GGUF, HF safetensors), for other packages' tests. */
export * from './tiny-model.ts';
export * from './tiny-gguf.ts';
