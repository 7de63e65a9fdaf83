/** Where the real test/integration model lives ($DRO_CACHE/models, fetched by `npm run setup`). */
import fs from 'node:fs';
import path from 'node:path';
import { droCacheDir } from './digest.ts';

export const SMOLLM2_GGUF_NAME = 'SmolLM2-135M-Instruct.Q4_1.gguf';

export function smolLm2GgufPath(): string {
  return path.join(droCacheDir(), 'models', SMOLLM2_GGUF_NAME);
}

/** The SmolLM2 GGUF path, or an error telling the user how to fetch it (tests must not silently skip). */
export function requireSmolLm2Gguf(): string {
  const file = smolLm2GgufPath();
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: run \`npm run setup\` first (it fetches the SmolLM2-135M-Instruct GGUF)`);
  }
  return file;
}
