import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalArtifactStore, renderedInputsSchema, tableForSchema, type ArtifactRef } from '@dro/artifacts';
import { ChatTemplate, loadTokenizer } from '@dro/llm';
import type { ProgressEvent, StageEnvironment } from '@dro/pipeline';

export function tempDir(prefix = 'dro-sampling-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export type TestContext = StageEnvironment & { store: LocalArtifactStore; events: ProgressEvent[]; logs: string[]; abort: AbortController };

/** A real store in a fresh temp directory; records progress and log lines. */
export function testContext(modelPath: string | null, store = new LocalArtifactStore({ root: tempDir('dro-store-') })): TestContext {
  const events: ProgressEvent[] = [];
  const logs: string[] = [];
  const abort = new AbortController();
  return {
    store,
    events,
    logs,
    abort,
    progress: (e) => events.push(e),
    signal: abort.signal,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m) },
    modelDigest: modelPath ? 'test-model' : null,
    modelPath,
  };
}

/** A rendered-inputs table built with the model's own tokenizer and template (what data-prep produces). */
export async function storeRenderedInputs(
  ctx: TestContext,
  modelPath: string,
  queries: { id: string; query: string; label: 'harmful' | 'harmless'; system?: string }[],
): Promise<ArtifactRef> {
  const tokenizer = loadTokenizer(modelPath);
  const template = ChatTemplate.of(tokenizer);
  const rendered = queries.map((q) =>
    template.applyChatTemplate(
      q.system ? [{ role: 'system', content: q.system }, { role: 'user', content: q.query }] : [{ role: 'user', content: q.query }],
      { addGenerationPrompt: true },
    ),
  );
  const table = tableForSchema(renderedInputsSchema, {
    input_id: queries.map((q) => `t/${q.id}/${q.system ? 'p' : 'none'}`),
    set: queries.map(() => 't'),
    query_id: queries.map((q) => q.id),
    query_index: queries.map((_, i) => i),
    label: queries.map((q) => q.label),
    category: queries.map(() => null),
    pair_id: queries.map(() => null),
    prompt_id: queries.map((q) => (q.system ? 'p' : 'none')),
    query: queries.map((q) => q.query),
    rendered,
    token_ids: rendered.map((r) => tokenizer.encode(r, { addSpecialTokens: false })),
    prompt_token_start: queries.map(() => null),
    prompt_token_count: queries.map(() => null),
  });
  return ctx.store.putTable(renderedInputsSchema.name, table, { producer: { stage: 'test', version: '1' }, params: {}, inputs: {} });
}
