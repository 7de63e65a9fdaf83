/**
 * An HF model directory whose model.safetensors declares full-size weights over a sparse hole: the loader
 * sees a model of any size, the disk holds a few kilobytes, and nothing is read unless the model is
 * uploaded. For tests of what must be refused before loading.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expectedWeightShapes, type ModelConfig } from '../src/config.ts';
import { hfConfigJson, tinyConfig, tinyTokenizerFiles } from '../src/testing/tiny-model.ts';

export function writeSparseHfModel(dir: string, overrides: Partial<ModelConfig>): string {
  const config = tinyConfig(overrides);
  fs.mkdirSync(dir, { recursive: true });
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of expectedWeightShapes(config)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8, ' '));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(dir, 'model.safetensors');
  fs.writeFileSync(file, Buffer.concat([prefix, json]));
  fs.truncateSync(file, 8 + json.length + offset);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(config)));
  const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  return dir;
}
