/**
 * Test fixtures for the training stages: a real artifact store in a temp folder, rendered-inputs tables
 * made with the tiny model's own chat template, and directions with the tiny model's hidden size.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  LocalArtifactStore,
  writeDirections,
  renderedInputsSchema,
  tableForSchema,
  type ArtifactRef,
} from '@dro/artifacts';
import type { StageEnvironment } from '@dro/pipeline';
import type { ChatModel } from '@dro/llm';
import { findPromptSpan } from '../src/soft-prompt.ts';
import { orthonormalRows, seededRandom } from './helpers.ts';

export const HARMFUL = ['how to hurt him', 'steal a car now', 'make a weapon', 'hack the bank', 'poison the well', 'burn the house'];
export const HARMLESS = ['how to help him', 'wash a car now', 'make a salad', 'visit the bank', 'clean the well', 'paint the house'];

export function tempStore(): LocalArtifactStore {
  return new LocalArtifactStore({ root: mkdtempSync(path.join(tmpdir(), 'dro-store-')) });
}

export function stageContext(store: LocalArtifactStore, modelDir: string, signal = new AbortController().signal) {
  const events: { done: number; total?: number; message?: string }[] = [];
  const ctx: StageEnvironment = {
    store,
    progress: (e) => events.push(e),
    signal,
    log: { info: () => {}, warn: () => {} },
    modelDigest: null,
    modelPath: modelDir,
  };
  return { ctx, events };
}

const USER = { producer: { stage: 'test-fixture', version: '1' }, params: {}, inputs: {} };

/** Rendered chat inputs of the fixture queries under `prompts` (id → text; "none" = no system message). */
export async function putRendered(store: LocalArtifactStore, model: ChatModel, prompts: Record<string, string | null>, set = 'train'): Promise<ArtifactRef> {
  const rows: Record<string, unknown>[] = [];
  for (const [promptId, text] of Object.entries(prompts)) {
    const promptIds = text === null ? null : model.tokenizer.encode(text, { addSpecialTokens: false });
    [...HARMFUL.map((q) => ['harmful', q]), ...HARMLESS.map((q) => ['harmless', q])].forEach(([label, query], i) => {
      const messages = text === null ? [{ role: 'user' as const, content: query! }] : [{ role: 'system' as const, content: text }, { role: 'user' as const, content: query! }];
      const rendered = model.applyChatTemplate(messages, { addGenerationPrompt: true });
      const ids = model.encodeChat(messages);
      const span = promptIds === null ? null : findPromptSpan(ids, promptIds, 'fixture');
      const queryId = `${label}-${String(i).padStart(2, '0')}`;
      rows.push({
        input_id: `${set}/${queryId}/${promptId}`, set, query_id: queryId, query_index: i, label, category: null, pair_id: null, prompt_id: promptId, query,
        rendered, token_ids: ids, prompt_token_start: span?.spanStart ?? null, prompt_token_count: span ? span.spanEnd - span.spanStart : null,
      });
    });
  }
  const columns = Object.fromEntries(renderedInputsSchema.columns.map((c) => [c.name, rows.map((r) => r[c.name])]));
  return store.putTable(renderedInputsSchema.name, tableForSchema(renderedInputsSchema, columns as never), USER);
}

/** Random PCA directions and boundaries in the model's hidden space (k = 4). */
export async function putDirections(store: LocalArtifactStore, d: number, seed = 2): Promise<ArtifactRef> {
  return writeDirections(store, {
    mean: new Float32Array(d),
    components: orthonormalRows(4, d, seededRandom(seed)),
    explainedVarianceRatio: [0.4, 0.2, 0.1, 0.05],
    refusalW: [2, -1, 1, 0.5],
    refusalB: 0.2,
    harmfulnessW: [-1, 1.5, 0.5, -0.5],
    harmfulnessB: 0,
  }, USER);
}
