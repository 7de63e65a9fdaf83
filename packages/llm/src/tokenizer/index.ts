export { Tokenizer, loadTokenizer, tokenizerFilesFromHfDir, type EncodeOptions, type DecodeOptions } from './tokenizer.ts';
export { tokenizerFilesFromGguf, type HfTokenizerFiles } from './gguf-tokenizer.ts';
