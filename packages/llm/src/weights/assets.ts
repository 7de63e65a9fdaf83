/** Where the real test/integration model lives ($DRO_CACHE/models, fetched by `npm run setup`); paths live in @dro/artifacts' paths.ts. */
import fs from 'node:fs';
import { SMOLLM2_GGUF_NAME, defaultModelPath } from '@dro/artifacts';

export { SMOLLM2_GGUF_NAME };

export function smolLm2GgufPath(): string {
  return defaultModelPath();
}

/** The SmolLM2 GGUF path, or an error telling the user how to fetch it (tests must not silently skip). */
export function requireSmolLm2Gguf(): string {
  const file = smolLm2GgufPath();
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: run \`npm run setup\` first (it fetches the SmolLM2-135M-Instruct GGUF)`);
  }
  return file;
}
