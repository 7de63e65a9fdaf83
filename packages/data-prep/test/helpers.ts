import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalArtifactStore } from '@dro/artifacts';
import type { ProgressEvent, StageEnvironment } from '@dro/pipeline';

export const repoRoot = path.resolve(import.meta.dirname, '../../..');

export function tempDir(prefix = 'dro-data-prep-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A real store in a fresh temp directory and a context that records progress. */
export function testContext(modelPath: string | null = null): StageEnvironment & { store: LocalArtifactStore; events: ProgressEvent[] } {
  const store = new LocalArtifactStore({ root: tempDir('dro-store-') });
  const events: ProgressEvent[] = [];
  return {
    store,
    events,
    progress: (e) => events.push(e),
    signal: new AbortController().signal,
    log: { info: () => {}, warn: () => {} },
    modelDigest: modelPath ? 'test-model' : null,
    modelPath,
  };
}

/** The real SmolLM2 GGUF; fails loudly when the setup step has not fetched it. */
export function smolLm2Path(): string {
  const cache = process.env.DRO_CACHE ?? path.join(os.homedir(), '.cache', 'dro');
  const file = path.join(cache, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
  if (!existsSync(file)) throw new Error(`SmolLM2 model not found at ${file}: run \`npm run setup\` first`);
  return file;
}
