import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalArtifactStore } from '@dro/artifacts';
import type { ProgressEvent, StageEnvironment } from '@dro/pipeline';

/** A real store in a fresh temp directory and a context that records progress. */
export function testContext(): StageEnvironment & { store: LocalArtifactStore; events: ProgressEvent[] } {
  const store = new LocalArtifactStore({ root: mkdtempSync(path.join(os.tmpdir(), 'dro-directions-')) });
  const events: ProgressEvent[] = [];
  return {
    store,
    events,
    progress: (e) => events.push(e),
    signal: new AbortController().signal,
    log: { info: () => {}, warn: () => {} },
    modelDigest: null,
    modelPath: null,
  };
}
