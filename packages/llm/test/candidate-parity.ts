/**
 * The device top-k fast path (generate/token-candidates.ts) against the host sampling path it replaces,
 * token for token, end to end through generate() on tiny models: many seeds, rows and sampling parameters,
 * min-new-tokens with stop tokens, and a model whose logits tie exactly (duplicated embedding rows, tied
 * lm head) so ties at the k-th value occur both inside the fetched candidates and beyond them. Registered
 * by one test file per backend (a process runs one backend).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tf, loadModel, type ChatModel, type GenerateOptions, type GenerateResult } from '../src/index.ts';
import { candidatePathCounts, DEVICE_TOP_K_ENV } from '../src/generate/token-candidates.ts';
import { FORWARD_GRAPH_ENV } from '../src/native/forward-graph.ts';
import { randomWeights, tinyConfig, writeTinyHfModel, writeTinyGgufModel } from '../src/testing/tiny-model.ts';

/** Token ids given identical embedding rows (so identical logits): a group inside k' and one wider than it. */
export const TIE_GROUPS = [Array.from({ length: 12 }, (_, i) => 40 + i), Array.from({ length: 40 }, (_, i) => 60 + i)];

const promptA = [261, 117, 115, 101, 114, 10, 104, 105, 262, 10, 261, 97];
const promptB = [261, 117, 115, 101, 114, 10];
const promptC = [104, 105, 32, 116, 104, 101, 114, 101];

/** The same request on the host path (DRO_DEVICE_TOP_K=0) and the default path; also how many rows each path sampled. */
export async function bothPaths(model: ChatModel, options: GenerateOptions): Promise<{ host: GenerateResult; device: GenerateResult; deviceRows: number; fallbackRows: number }> {
  process.env[DEVICE_TOP_K_ENV] = '0';
  let host: GenerateResult;
  try {
    host = await model.generate(options);
  } finally {
    delete process.env[DEVICE_TOP_K_ENV];
  }
  const before = { ...candidatePathCounts };
  const device = await model.generate(options);
  return { host, device, deviceRows: candidatePathCounts.device - before.device, fallbackRows: candidatePathCounts.host - before.host };
}

/** A tiny GGUF model whose embedding rows (= lm head columns) repeat within each TIE_GROUPS group. */
function writeTieModel(file: string): string {
  const config = tinyConfig();
  const weights = randomWeights(config, 11);
  const embed = weights.get('model.embed_tokens.weight')!;
  const d = config.hiddenSize;
  for (const group of TIE_GROUPS) for (const id of group.slice(1)) embed.data.copyWithin(id * d, group[0] * d, (group[0] + 1) * d);
  return writeTinyGgufModel(file, 'F32', config, 11, weights);
}

/**
 * Registers the parity tests for the active backend. `forwardModes`: the forward variants to run each
 * comparison under (native: the graph and the eager decoder; elsewhere only eager).
 */
export function registerCandidateParityTests(forwardModes: () => ('graph' | 'eager')[]): void {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-candidates-'));
  let model: ChatModel;
  let tieModel: ChatModel;
  let tensorsBefore: number;
  beforeAll(async () => {
    model = await loadModel(writeTinyHfModel(path.join(tmp, 'tiny'), undefined, 3));
    tieModel = await loadModel(writeTieModel(path.join(tmp, 'ties.gguf')));
    tensorsBefore = tf.memory().numTensors;
  });
  afterAll(() => {
    model.dispose();
    tieModel.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const inMode = async <T>(mode: 'graph' | 'eager', fn: () => Promise<T>): Promise<T> => {
    if (mode === 'eager') process.env[FORWARD_GRAPH_ENV] = '0';
    try {
      return await fn();
    } finally {
      delete process.env[FORWARD_GRAPH_ENV];
    }
  };

  it('the step\'s candidates are a row\'s K\' largest logits (the blocked search and the plain top-k alike)', async () => {
    for (const mode of forwardModes()) {
      for (const m of [model, tieModel]) {
        const ids = [promptA, promptB.concat(promptB), promptC.concat(promptA).slice(0, 12)];
        const x = m.embed(ids);
        const mask = ids.map((row) => row.map(() => 1));
        // 5, 13, 59: K' ≤ the tiny vocabulary's block count (the blocked search); 209: more (the plain top-k).
        for (const count of [5, 13, 59, 209]) {
          const out = await inMode(mode, async () => m.forwardWithCache(x, mask, null, { candidates: count }));
          const logits = out.lastLogits.arraySync();
          const expected = tf.tidy(() => tf.topk(out.lastLogits, count).values.arraySync());
          const values = out.candidates!.values.arraySync();
          const indices = out.candidates!.indices.arraySync();
          for (let r = 0; r < ids.length; r++) {
            expect(values[r], `${mode} K' ${count} row ${r}`).toEqual(expected[r]);
            expect(indices[r].map((id) => logits[r][id])).toEqual(values[r]);
            expect(new Set(indices[r]).size).toBe(count);
          }
          tf.dispose([out.lastLogits, out.candidates!.values, out.candidates!.indices, out.candidates!.rowSums, ...out.cache.flatMap((c) => [c.keysT, c.values])]);
        }
        x.dispose();
      }
    }
  });

  it('samples the same tokens on the device top-k path as on the host path, over seeds, rows and parameters', async () => {
    const grid = [
      { temperature: 1, topK: 50, topP: 0.9 },
      { temperature: 0.7, topK: 5, topP: 1 },
      { temperature: 1.5, topK: 1, topP: 0.5 },
      { temperature: 1, topK: 200, topP: 0.95 },
    ];
    for (const mode of forwardModes()) {
      for (const [g, params] of grid.entries()) {
        const options: GenerateOptions = { inputIds: [promptA, promptB, promptC], samples: 5, maxNewTokens: 12, seeds: [g, 100 + g, 7 * g + 3], stopTokenIds: [], ...params };
        const { host, device, deviceRows, fallbackRows } = await inMode(mode, () => bothPaths(model, options));
        expect(device, `${mode} ${JSON.stringify(params)}`).toEqual(host);
        expect(deviceRows).toBe(3 * 5 * 12);
        expect(fallbackRows).toBe(0);
      }
    }
  });

  it('min-new-tokens: stop tokens held off before top-k give the same tokens, and stop when allowed', async () => {
    // Stop tokens that the model ranks high: the first tokens it would pick greedily.
    const firsts = (await model.generate({ inputIds: [promptA, promptB, promptC], greedy: true, maxNewTokens: 1, stopTokenIds: [] })).sequences.map((s) => s[0].tokenIds[0]);
    const stopTokenIds = [...new Set([...firsts, model.config.eosTokenId!])];
    for (const mode of forwardModes()) {
      for (const minNewTokens of [0, 3, 8]) {
        for (const topK of [1, 3, 50]) {
          const options: GenerateOptions = { inputIds: [promptA, promptB, promptC], samples: 4, maxNewTokens: 10, minNewTokens, seed: topK + minNewTokens, topK, topP: 0.9, stopTokenIds };
          const { host, device } = await inMode(mode, () => bothPaths(model, options));
          expect(device, `${mode} minNewTokens ${minNewTokens} topK ${topK}`).toEqual(host);
        }
        const greedy = await inMode(mode, () => bothPaths(model, { inputIds: [promptA, promptB, promptC], greedy: true, maxNewTokens: 10, minNewTokens, stopTokenIds }));
        expect(greedy.device).toEqual(greedy.host);
        if (minNewTokens === 0) expect(greedy.host.sequences.every((s) => s[0].finishReason === 'stop_token' && s[0].tokenIds.length === 0)).toBe(true);
      }
    }
  });

  it('logits that tie at the k-th value: ties inside the candidates are kept, ties beyond them fall back to the host path', async () => {
    // The precondition: the tie model's logits really tie within each group.
    const out = tieModel.forward({ inputIds: [promptA], logitsFor: 'last' });
    const logits = out.logits.dataSync();
    tf.dispose([out.logits, out.lastHidden]);
    for (const group of TIE_GROUPS) expect(new Set(group.map((id) => logits[id])).size).toBe(1);

    for (const mode of forwardModes()) {
      let deviceRows = 0;
      let fallbackRows = 0;
      for (const topK of [1, 2, 5, 10, 20, 30, 50]) {
        for (const temperature of [0.3, 1, 3]) {
          const options: GenerateOptions = {
            inputIds: [promptA, promptB, promptC], samples: 4, maxNewTokens: 8, minNewTokens: 2, seed: topK * 31 + Math.round(temperature * 10),
            topK, topP: 0.95, temperature, stopTokenIds: [TIE_GROUPS[0][3], TIE_GROUPS[1][0], tieModel.config.eosTokenId!],
          };
          const both = await inMode(mode, () => bothPaths(tieModel, options));
          expect(both.device, `${mode} topK ${topK} temperature ${temperature}`).toEqual(both.host);
          deviceRows += both.deviceRows;
          fallbackRows += both.fallbackRows;
        }
      }
      // Both branches ran: rows proven on the device, and rows whose tie ran past the candidates.
      expect(deviceRows).toBeGreaterThan(0);
      expect(fallbackRows).toBeGreaterThan(0);
    }
  });

  it('leaves no tensors behind', () => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
}
