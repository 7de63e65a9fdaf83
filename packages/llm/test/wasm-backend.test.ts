/**
 * The wasm backend's failures fail the call (issue 14): XNNPACK errors that were only printed ("XNN status
 * … Got status 6", out of memory, on a 630M-parameter model) while generation went on with garbage, and a
 * model that cannot fit the 4 GiB wasm heap is refused before any weight is uploaded.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { tf, initBackend, loadModel, BackendError } from '../src/index.ts';
import { tinyConfig, writeTinyHfModel } from '../src/testing/tiny-model.ts';
import { writeSparseHfModel } from './sparse-model.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-wasm-'));
beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('wasm backend errors fail the call', () => {
  it('an op XNNPACK refuses (a rank-7 broadcast add: status 4) throws a BackendError instead of returning garbage', () => {
    const a = tf.ones([1, 1, 1, 1, 1, 2, 2]);
    const b = tf.ones([1, 1, 1, 1, 1, 1, 2]);
    const before = tf.memory().numTensors;
    expect(() => tf.add(a, b)).toThrow(BackendError);
    expect(() => tf.add(a, b)).toThrow(/tfjs wasm backend failed in kernel Add: XNN status for xnn_setup_\S+ is not successful\. Got status 4\. .*\(XNNPACK status 4: unsupported parameter\)/);
    expect(tf.memory().numTensors).toBe(before); // the failed kernel's output is disposed
    // The backend stays usable.
    expect(Array.from(tf.tidy(() => tf.add(tf.ones([2]), tf.ones([2])).dataSync()))).toEqual([2, 2]);
    tf.dispose([a, b]);
  });
});

describe('tensor memory on the wasm heap fails loudly', () => {
  it('a tensor larger than the 4 GiB heap throws (it was given an int32-wrapped 505 MB block and written past it)', () => {
    const before = tf.memory().numTensors;
    expect(() => tf.fill([1_200_000_000], 1)).toThrow(BackendError);
    expect(() => tf.fill([1_200_000_000], 1)).toThrow(/tfjs wasm backend: a tensor of 4800000000 bytes cannot fit the 4 GiB wasm heap/);
    expect(tf.memory().numTensors).toBe(before);
    // Empty tensors still work (malloc(0)).
    expect(tf.tidy(() => tf.zeros([0]).shape)).toEqual([0]);
  });
});

describe('models that cannot fit the wasm heap are refused before loading', () => {
  it('a model with 2.1 GiB of float32 weights (4.6 GiB resident with XNNPACK packing) names the backend and the limit', async () => {
    // A sparse file: the header declares the weights, the data is a hole (no disk, no reads).
    const dir = writeSparseHfModel(path.join(tmp, 'big'), { hiddenSize: 4096, vocabSize: 120_000, numHeads: 32, numKvHeads: 32, headDim: 128, intermediateSize: 64, numLayers: 1 });
    const before = tf.memory().numTensors;
    const error = await loadModel(dir).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(BadInputError);
    expect((error as Error).message).toMatch(
      /big: the model needs 4\.6 GiB \(2\.1 GiB of float32 weights, and XNNPACK's packed copy of the matmul weights\) plus 256 MiB to run on the wasm backend, over the wasm heap limit of 4 GiB; use the tensorflow backend/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a model that fits loads (SmolLM2-135M-sized budgets are far below the limit)', async () => {
    const model = await loadModel(writeTinyHfModel(path.join(tmp, 'tiny'), tinyConfig()));
    expect(model.memoryBudget.bytes).toBeGreaterThan(3 * 2 ** 30);
    model.dispose();
  });
});
