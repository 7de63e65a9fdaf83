import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalArtifactStore } from '@dro/artifacts';
import { requireSmolLm2Gguf } from '@dro/llm/weights';
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
export const smolLm2Path = requireSmolLm2Gguf;
