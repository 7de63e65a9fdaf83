/**
 * The per-process model cache on real tiny GGUF models: one load per model content (not per path, not per
 * acquire), a file changed in place is a new model, at most `capacity` idle models held (the least recently
 * used disposed first), a model in use never disposed under its user, clear() disposes everything.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { modelLoads, tf } from '@dro/llm';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { ModelCache } from '../src/model-cache.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-model-cache-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A tiny model file with weights from `seed`. */
const modelFile = (name: string, seed: number) => writeTinyGgufModel(path.join(dir, name), 'F32', undefined, seed);

describe('ModelCache', () => {
  it('loads a model once for every lease of the same content, and shares one load between concurrent acquires', async () => {
    const file = modelFile('a.gguf', 1);
    const copy = path.join(dir, 'a-copy.gguf');
    fs.copyFileSync(file, copy);
    const cache = new ModelCache();
    const before = modelLoads();
    const first = await cache.acquire(file);
    first.release();
    const [second, third] = await Promise.all([cache.acquire(file), cache.acquire(copy)]);
    expect(modelLoads() - before).toBe(1);
    expect(second.model).toBe(first.model);
    expect(third.model).toBe(first.model);
    second.release();
    third.release();
    expect(first.model.disposed).toBe(false);
    cache.clear();
    expect(first.model.disposed).toBe(true);
    expect(cache.size).toBe(0);
  });

  it('a model file changed in place is loaded again, never served from the cache', async () => {
    const file = modelFile('changing.gguf', 1);
    const cache = new ModelCache();
    const before = modelLoads();
    const old = await cache.acquire(file);
    const oldDigest = old.model.digest;
    old.release();
    modelFile('changing.gguf', 2);
    const fresh = await cache.acquire(file);
    expect(modelLoads() - before).toBe(2);
    expect(fresh.model.digest).not.toBe(oldDigest);
    // Capacity 1: the old model was disposed before the new one was uploaded.
    expect(old.model.disposed).toBe(true);
    fresh.release();
    cache.clear();
  });

  it('holds at most `capacity` idle models, least recently used evicted first; a model in use is disposed only when released', async () => {
    const [a, b, c] = [modelFile('lru-a.gguf', 11), modelFile('lru-b.gguf', 12), modelFile('lru-c.gguf', 13)];
    const tensorsBefore = tf.memory().numTensors;
    const cache = new ModelCache(2);
    const la = await cache.acquire(a);
    la.release();
    const lb = await cache.acquire(b);
    lb.release();
    (await cache.acquire(a)).release(); // a is now the most recently used
    const lc = await cache.acquire(c);
    expect([la.model.disposed, lb.model.disposed, lc.model.disposed]).toEqual([false, true, false]);
    lc.release();

    const one = new ModelCache(1);
    const held = await one.acquire(a);
    const other = await one.acquire(b); // a is in use: both stay loaded
    expect(one.size).toBe(2);
    expect(held.model.disposed).toBe(false);
    held.release(); // now idle beyond capacity: disposed
    expect(held.model.disposed).toBe(true);
    expect(one.size).toBe(1);
    one.clear(); // b still in use: disposed on release
    expect(other.model.disposed).toBe(false);
    other.release();
    other.release(); // a second release is a no-op
    expect(other.model.disposed).toBe(true);
    cache.clear();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('a model disposed behind the cache is loaded again; a file that is no model fails without a cache entry', async () => {
    const file = modelFile('disposed.gguf', 21);
    const cache = new ModelCache();
    const before = modelLoads();
    const lease = await cache.acquire(file);
    lease.model.dispose();
    lease.release();
    const again = await cache.acquire(file);
    expect(again.model.disposed).toBe(false);
    expect(modelLoads() - before).toBe(2);
    again.release();
    cache.clear();

    const bad = path.join(dir, 'bad.gguf');
    fs.writeFileSync(bad, 'not a gguf file');
    await expect(cache.acquire(bad)).rejects.toThrow(/bad\.gguf/);
    expect(cache.size).toBe(0);
    expect(() => new ModelCache(0)).toThrow(/capacity must be a whole number ≥ 1/);
  });
});
