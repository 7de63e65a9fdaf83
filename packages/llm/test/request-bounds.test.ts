/**
 * Requests are bounded before anything is allocated (issues 14 and 19): inputs longer than the model's
 * context are refused (generate: new tokens end at the context, with a warning), attention memory is
 * bounded, and a request whose KV cache / logits cannot fit the memory budget — `--samples 100000` grew
 * until the OOM killer — fails at once, naming the request and the budget. Also: a model larger than the
 * machine's memory is refused before loading.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { tf, loadModel, createChatModel, type ChatModel } from '../src/index.ts';
import { formatBytes } from '../src/model/memory-budget.ts';
import { memoryWeightSource, randomWeights, tinyConfig, writeTinyHfModel } from '../src/testing/tiny-model.ts';
import { writeSparseHfModel } from './sparse-model.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-bounds-'));
let model: ChatModel;
const prompt = [261, 117, 115, 101, 114, 10, 104, 105, 262, 10, 261, 97];

beforeAll(async () => {
  model = await loadModel(writeTinyHfModel(path.join(tmp, 'tiny'), undefined, 3));
});
afterAll(() => {
  model.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  const error = await p.then(() => null, (err: unknown) => err);
  expect(error).toBeInstanceOf(BadInputError);
  return error as Error;
}

describe('the model context', () => {
  it('forward refuses more positions than the context (tiny model: 512)', () => {
    const before = tf.memory().numTensors;
    expect(() => model.forward({ inputIds: [new Array(513).fill(97)] })).toThrow(BadInputError);
    expect(() => model.forward({ inputIds: [new Array(513).fill(97)] })).toThrow(/forward: 513 positions exceed the model's context of 512 positions/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('generate refuses a prompt that fills the context, and ends generation at the context with a warning', async () => {
    const long = await rejection(model.generate({ inputIds: [new Array(600).fill(97)], maxNewTokens: 4 }));
    expect(long.message).toMatch(/generate: the prompt has 600 tokens; the model's context of 512 positions leaves no room to generate/);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const out = await model.generate({ inputIds: [new Array(508).fill(97)], maxNewTokens: 64, minNewTokens: 10, greedy: true, stopTokenIds: [] });
      expect(out.sequences[0][0].tokenIds).toHaveLength(4);
      expect(out.sequences[0][0].finishReason).toBe('length');
    } finally {
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      process.off('warning', onWarning);
    }
    expect(warnings.join('\n')).toMatch(/a 508-token prompt leaves room for 4 of the 64 new tokens asked for \(context 512\)/);
  });
});

describe('the memory budget', () => {
  it('generate with 100,000 samples fails at once, naming the request and the budget', async () => {
    const error = await rejection(model.generate({ inputIds: [prompt], samples: 100_000, maxNewTokens: 480 }));
    expect(error.message).toMatch(
      /^generate: 1 prompt\(s\) × 100000 sample\(s\) × 492 positions needs at least \d+\.\d GiB \(KV cache \d+\.\d GiB, logits \d+ MiB, .*\), over the memory budget: .* left on the \w+ backend \(.*, less \d+ MiB for the model\)$/,
    );
  });

  it('many prompts × samples × tokens (a sampling stage with huge params) likewise', async () => {
    const prompts = Array.from({ length: 2000 }, () => prompt);
    const error = await rejection(model.generate({ inputIds: prompts, samples: 100, maxNewTokens: 400 }));
    expect(error.message).toMatch(/^generate: 2000 prompt\(s\) × 100 sample\(s\) × 412 positions needs at least/);
  });

  it('attention memory is bounded even within the context: a 400k-token forward on a 1M-context model is refused', async () => {
    const config = tinyConfig({ maxPositionEmbeddings: 1_000_000 });
    const wide = await createChatModel({
      config, weights: memoryWeightSource(randomWeights(config, 1)), tokenizer: model.tokenizer, digest: 'x', applyChatTemplate: () => '',
    });
    try {
      const before = tf.memory().numTensors;
      expect(() => wide.forward({ inputIds: [new Array(400_000).fill(97)], logitsFor: 'last' })).toThrow(
        /^forward of 1 × 400000 tokens needs at least \d+\.\d TiB \(attention \d+\.\d TiB, .*\), over the memory budget/,
      );
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      wide.dispose();
    }
  });

  it('a model whose float32 weights exceed the machine memory is refused before loading', async () => {
    const memory = Math.min(os.totalmem(), process.constrainedMemory?.() || Infinity);
    const vocabSize = Math.ceil(memory / (4096 * 4)) + 1024; // the embedding alone exceeds the memory
    const dir = writeSparseHfModel(path.join(tmp, 'huge'), { hiddenSize: 4096, vocabSize, numHeads: 32, numKvHeads: 32, headDim: 128, intermediateSize: 64, numLayers: 1 });
    const error = await rejection(loadModel(dir));
    const limit = model.backend === 'wasm' ? 'the wasm heap limit of 4 GiB' : `${formatBytes(memory)} of (physical memory|memory \\(container limit\\))`;
    expect(error.message).toMatch(new RegExp(`huge: the model needs \\d+\\.\\d GiB .*to run on the ${model.backend} backend, over ${limit.replace('.', '\\.')}`));
  });
});
