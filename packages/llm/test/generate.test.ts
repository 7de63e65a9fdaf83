/** Generation on a tiny random model: KV cache vs full recompute, seeding, samples, stops, streaming, soft prompts. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { tf, loadModel, type ChatModel } from '../src/index.ts';
import { argmax, sampleToken, suppressStopTokens } from '../src/generate/logits-processors.ts';
import { mulberry32 } from '../src/generate/rng.ts';
import { writeTinyHfModel } from '../src/testing/tiny-model.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-generate-'));
let model: ChatModel;
let tensorsBefore: number;
const promptA = [261, 117, 115, 101, 114, 10, 104, 105, 262, 10, 261, 97];
const promptB = [261, 117, 115, 101, 114, 10];

beforeAll(async () => {
  model = await loadModel(writeTinyHfModel(path.join(tmp, 'tiny'), undefined, 3));
  tensorsBefore = tf.memory().numTensors;
});
afterAll(() => {
  model.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Greedy decoding by re-running the full forward each step (no cache): the reference for the cache. */
function greedyWithoutCache(ids: number[], steps: number): number[] {
  const seq = [...ids];
  for (let i = 0; i < steps; i++) {
    const out = model.forward({ inputIds: [seq], logitsFor: 'last' });
    seq.push(argmax(out.logits.dataSync() as Float32Array));
    tf.dispose([out.logits, out.lastHidden]);
  }
  return seq.slice(ids.length);
}

describe('generate', () => {
  it('greedy with the KV cache equals greedy by full recomputation, alone and in a padded batch', async () => {
    const noStop = { greedy: true, maxNewTokens: 12, stopTokenIds: [] };
    const expectedA = greedyWithoutCache(promptA, 12);
    const expectedB = greedyWithoutCache(promptB, 12);
    const alone = await model.generate({ inputIds: [promptA], ...noStop });
    expect(alone.sequences[0][0].tokenIds).toEqual(expectedA);
    const batch = await model.generate({ inputIds: [promptA, promptB], ...noStop });
    expect(batch.sequences[0][0].tokenIds).toEqual(expectedA);
    expect(batch.sequences[1][0].tokenIds).toEqual(expectedB);
    expect(batch.sequences[1][0].finishReason).toBe('length');
  });

  it('same seed → same samples; another seed → different samples; n samples per prompt', async () => {
    const opts = { inputIds: [promptA, promptB], samples: 3, maxNewTokens: 10, temperature: 1.5, stopTokenIds: [] };
    const a = await model.generate({ ...opts, seed: 42 });
    const b = await model.generate({ ...opts, seed: 42 });
    const c = await model.generate({ ...opts, seed: 43 });
    expect(a.sequences.map((s) => s.length)).toEqual([3, 3]);
    expect(a).toEqual(b);
    expect(JSON.stringify(a)).not.toEqual(JSON.stringify(c));
    const texts = a.sequences[0].map((s) => s.tokenIds.join(','));
    expect(new Set(texts).size).toBeGreaterThan(1); // samples of one prompt differ
  });

  it('a sample does not depend on the other prompts in the batch', async () => {
    const opts = { samples: 2, maxNewTokens: 8, seed: 9, temperature: 1, stopTokenIds: [] };
    const together = await model.generate({ inputIds: [promptA, promptB], ...opts });
    const alone = await model.generate({ inputIds: [promptA], ...opts });
    expect(together.sequences[0]).toEqual(alone.sequences[0]);
  });

  it('top-k = 1 sampling is greedy', async () => {
    const greedy = await model.generate({ inputIds: [promptA], greedy: true, maxNewTokens: 8, stopTokenIds: [] });
    const topK1 = await model.generate({ inputIds: [promptA], topK: 1, seed: 5, maxNewTokens: 8, stopTokenIds: [] });
    expect(topK1.sequences[0][0].tokenIds).toEqual(greedy.sequences[0][0].tokenIds);
  });

  it('stop tokens end a sample unless minNewTokens holds them off', async () => {
    const first = (await model.generate({ inputIds: [promptA], greedy: true, maxNewTokens: 1, stopTokenIds: [] })).sequences[0][0].tokenIds[0];
    const stopped = await model.generate({ inputIds: [promptA], greedy: true, maxNewTokens: 8, stopTokenIds: [first] });
    expect(stopped.sequences[0][0]).toMatchObject({ tokenIds: [], finishReason: 'stop_token' });
    const held = await model.generate({ inputIds: [promptA], greedy: true, maxNewTokens: 8, minNewTokens: 3, stopTokenIds: [first] });
    const ids = held.sequences[0][0].tokenIds;
    expect(ids.length).toBeGreaterThanOrEqual(3);
    expect(ids.slice(0, 3)).not.toContain(first);
  });

  it('stop strings cut the text and end the sample; streamed deltas add up to the text', async () => {
    const full = await model.generate({ inputIds: [promptA], greedy: true, maxNewTokens: 16, stopTokenIds: [] });
    const text = full.sequences[0][0].text;
    const stop = text.slice(5, 7);
    expect(stop.length).toBe(2);
    const streamed: string[] = [];
    const cut = await model.generate({
      inputIds: [promptA], greedy: true, maxNewTokens: 16, stopTokenIds: [], stopStrings: [stop],
      onToken: (e) => streamed.push(e.textDelta),
    });
    const seq = cut.sequences[0][0];
    expect(seq.finishReason).toBe('stop_string');
    expect(seq.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(streamed.join('')).toBe(seq.text);
  });

  it('generates from input embeddings (soft prompt path) exactly as from ids', async () => {
    const embeds = model.embed([promptA]);
    const fromEmbeds = await model.generate({ inputsEmbeds: embeds, greedy: true, maxNewTokens: 6, stopTokenIds: [] });
    const fromIds = await model.generate({ inputIds: [promptA], greedy: true, maxNewTokens: 6, stopTokenIds: [] });
    expect(fromEmbeds.sequences).toEqual(fromIds.sequences);
    expect(embeds.isDisposed).toBe(false);
    embeds.dispose();
  });

  it('rejects bad options, naming the field', async () => {
    await expect(model.generate({ inputIds: [promptA], samples: 0 })).rejects.toThrow(BadInputError);
    await expect(model.generate({ inputIds: [promptA], topP: 1.5 })).rejects.toThrow(/topP must be in \(0, 1\]/);
    await expect(model.generate({ inputIds: [promptA], temperature: 0 })).rejects.toThrow(/temperature/);
    await expect(model.generate({ inputIds: [[]] })).rejects.toThrow(/empty prompt/);
    await expect(model.generate({ inputIds: [promptA], minNewTokens: 9, maxNewTokens: 4 })).rejects.toThrow(/minNewTokens/);
  });

  it('leaves no tensors behind', () => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});

describe('logits processors', () => {
  const logits = Float32Array.from([2, 1, 0, -1, 3]);
  const draw = (params: { temperature: number; topK: number; topP: number }, n = 4000): number[] => {
    const rng = mulberry32(11);
    const counts = new Array<number>(logits.length).fill(0);
    for (let i = 0; i < n; i++) counts[sampleToken(logits, params, rng)]++;
    return counts.map((c) => c / n);
  };

  it('samples the softmax distribution at temperature 1', () => {
    const z = [...logits].reduce((s, l) => s + Math.exp(l), 0);
    const freq = draw({ temperature: 1, topK: 0, topP: 1 }, 20000);
    freq.forEach((f, i) => expect(Math.abs(f - Math.exp(logits[i]) / z)).toBeLessThan(0.015));
  });

  it('top-k keeps the k most likely tokens; top-p the smallest set reaching p', () => {
    const topK = draw({ temperature: 1, topK: 2, topP: 1 });
    expect(topK[1] + topK[2] + topK[3]).toBe(0);
    expect(topK[4]).toBeGreaterThan(topK[0]);
    // p(3) = 0.64, p(3)+p(2) = 0.87: top-p 0.7 keeps ids 4 and 0 only.
    const topP = draw({ temperature: 1, topK: 0, topP: 0.7 });
    expect(topP[1] + topP[2] + topP[3]).toBe(0);
    expect(topP[0]).toBeGreaterThan(0);
  });

  it('low temperature concentrates on the argmax', () => {
    expect(draw({ temperature: 0.05, topK: 0, topP: 1 })[4]).toBeGreaterThan(0.999);
  });

  // The spec sampleToken must match: sort every candidate, softmax in float64, cut top-k (ties kept) and
  // top-p, draw. sampleToken avoids the full sort; it must draw the same tokens from the same RNG stream.
  function referenceSample(l: Float32Array, params: { temperature: number; topK: number; topP: number }, rng: () => number): number {
    let candidates = [...l.keys()].filter((i) => l[i] !== -Infinity);
    if (params.topK > 0 && params.topK < candidates.length) {
      const threshold = [...candidates.map((i) => l[i])].sort((a, b) => b - a)[params.topK - 1];
      candidates = candidates.filter((i) => l[i] >= threshold);
    }
    candidates.sort((a, b) => l[b] - l[a] || a - b);
    const weights = candidates.map((i) => Math.exp(l[i] / params.temperature - l[candidates[0]] / params.temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    let keep = candidates.length;
    let cumulative = 0;
    for (let i = 0; params.topP < 1 && i < candidates.length; i++) {
      cumulative += weights[i] / total;
      if (cumulative >= params.topP) {
        keep = i + 1;
        break;
      }
    }
    let u = rng() * weights.slice(0, keep).reduce((a, b) => a + b, 0);
    for (let i = 0; i < keep; i++) if ((u -= weights[i]) < 0) return candidates[i];
    return candidates[keep - 1];
  }

  it.each([
    { temperature: 1, topK: 50, topP: 0.9 },
    { temperature: 0.7, topK: 0, topP: 0.9 },
    { temperature: 1.3, topK: 0, topP: 0.5 },
    { temperature: 1, topK: 7, topP: 1 },
    { temperature: 1, topK: 0, topP: 1 },
  ])('draws the same tokens as the full-sort reference (%o)', (params) => {
    const gen = mulberry32(5);
    for (let trial = 0; trial < 40; trial++) {
      // Peaked and flat rows, with ties (rounded logits) and masked tokens.
      const spread = trial % 2 === 0 ? 3 : 12;
      const l = Float32Array.from({ length: 3000 }, () => Math.round((gen() - 0.5) * spread * 4) / 4);
      for (let m = 0; m < 30; m++) l[Math.floor(gen() * l.length)] = -Infinity;
      const a = mulberry32(100 + trial);
      const b = mulberry32(100 + trial);
      for (let draw = 0; draw < 5; draw++) expect(sampleToken(l, params, a)).toBe(referenceSample(l, params, b));
    }
  });

  it('suppresses stop tokens before minNewTokens', () => {
    const l = Float32Array.from(logits);
    suppressStopTokens(l, [4], 0, 1);
    expect(argmax(l)).toBe(0);
    const later = Float32Array.from(logits);
    suppressStopTokens(later, [4], 1, 1);
    expect(argmax(later)).toBe(4);
  });
});
