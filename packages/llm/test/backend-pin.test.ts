/**
 * The process's tfjs backend is chosen once and never switched (issue 19, item 2): `dro worker --backend
 * wasm` pinned wasm, then every model stage's loadModel re-resolved the default ('auto' = native
 * TensorFlow here) and ran — and recorded — tensorflow. This file pins cpu (always available) first, as
 * the worker pins its --backend, then loads models the way stages do.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tf, initBackend, activeBackend, loadModel, BackendError } from '../src/index.ts';
import { writeTinyHfModel } from '../src/testing/tiny-model.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-pin-'));
const savedEnv = process.env.DRO_TFJS_BACKEND;
afterAll(() => {
  if (savedEnv === undefined) delete process.env.DRO_TFJS_BACKEND;
  else process.env.DRO_TFJS_BACKEND = savedEnv;
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a pinned backend stays pinned', () => {
  it('a stage loading its model without a backend name runs on the pinned backend, whatever the environment says', async () => {
    expect(await initBackend('cpu')).toBe('cpu');
    // What a stage sees in a worker started with --backend cpu but DRO_TFJS_BACKEND (or auto) saying otherwise.
    process.env.DRO_TFJS_BACKEND = 'wasm';
    const model = await loadModel(writeTinyHfModel(path.join(tmp, 'tiny')));
    try {
      expect(model.backend).toBe('cpu'); // what manifests record
      expect(tf.getBackend()).toBe('cpu'); // what really runs
      expect(activeBackend()).toBe('cpu');
      expect(await initBackend()).toBe('cpu');
      expect(await initBackend('auto')).toBe('cpu');
      const out = model.forward({ inputIds: [[1, 2, 3]], logitsFor: 'last' });
      tf.dispose([out.logits, out.lastHidden]);
    } finally {
      model.dispose();
    }
  });

  it('asking for a different backend fails with a clear error and switches nothing', async () => {
    const dir = writeTinyHfModel(path.join(tmp, 'other'));
    for (const other of ['wasm', 'tensorflow']) {
      await expect(loadModel(dir, { backend: other })).rejects.toThrow(BackendError);
      await expect(loadModel(dir, { backend: other })).rejects.toThrow(
        new RegExp(`this process runs on the tfjs backend "cpu" .*; it cannot switch to "${other}"`),
      );
      await expect(initBackend(other)).rejects.toThrow(/cannot switch/);
    }
    expect(tf.getBackend()).toBe('cpu');
    expect(await initBackend('cpu')).toBe('cpu');
  });
});
