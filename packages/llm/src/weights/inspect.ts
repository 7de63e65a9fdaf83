/** A summary of a model file/directory for `dro llm inspect`: architecture, sizes, quant types, template. */
import fs from 'node:fs';
import path from 'node:path';
import type { Architecture } from '../config.ts';
import { loadWeights, type WeightFormat } from './load.ts';
import { readJsonFile } from './safetensors-weights.ts';

export interface ModelSummary {
  path: string;
  format: WeightFormat;
  architecture: Architecture;
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Storage type → number of tensors, over every tensor the model uses (e.g. { Q4_1: 210, F32: 61 }). */
  quantTypes: Record<string, number>;
  /** Weights the model uses; tied embeddings are counted once. */
  parameterCount: number;
  chatTemplate: boolean;
  fileBytes: number;
  digest: string;
}

export function inspectModel(modelPath: string): ModelSummary {
  const loaded = loadWeights(modelPath);
  const { config, tensors } = loaded;
  const quantTypes: Record<string, number> = {};
  let parameterCount = 0;
  for (const name of tensors.names()) {
    const info = tensors.info(name);
    quantTypes[info.storedAs] = (quantTypes[info.storedAs] ?? 0) + 1;
    parameterCount += info.shape.reduce((a, b) => a * b, 1);
  }
  let chatTemplate: boolean;
  if (loaded.gguf) {
    chatTemplate = typeof loaded.gguf.get('tokenizer.chat_template') === 'string';
  } else {
    // Read the template's presence without building the tokenizer (no tokenizer.json is fine here).
    const configFile = path.join(modelPath, 'tokenizer_config.json');
    const tokenizerConfig = fs.existsSync(configFile) ? ((readJsonFile(configFile) ?? {}) as { chat_template?: unknown }) : {};
    chatTemplate = tokenizerConfig.chat_template != null || fs.existsSync(path.join(modelPath, 'chat_template.jinja'));
  }
  return {
    path: path.resolve(modelPath),
    format: loaded.format,
    architecture: config.architecture,
    numLayers: config.numLayers,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    numHeads: config.numHeads,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    vocabSize: config.vocabSize,
    maxPositionEmbeddings: config.maxPositionEmbeddings,
    tieWordEmbeddings: config.tieWordEmbeddings,
    quantTypes,
    parameterCount,
    chatTemplate,
    fileBytes: loaded.files.reduce((sum, f) => sum + fs.statSync(f).size, 0),
    digest: loaded.digest,
  };
}
