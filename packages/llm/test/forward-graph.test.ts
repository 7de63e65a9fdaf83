/**
 * The graph forward (native backend): it must compute what the eager decoder computes — logits, hidden
 * states, KV caches, generated tokens, and under tf.grad the gradient w.r.t. the input embeddings — for
 * GQA and biased (Qwen2-style) models, with left padding, and mixed with eager calls on one cache. On
 * other backends the graph is never used and these tests are skipped (failed under DRO_REQUIRE_NATIVE=1,
 * as CI runs them: see native-backend.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tf, loadModel, padBatch, generate, type ChatModel } from '../src/index.ts';
import { FORWARD_GRAPH_ENV, forwardGraphUsable } from '../src/native/forward-graph.ts';
import { GraphBuilder, DT_FLOAT } from '../src/native/graph-def.ts';
import { GraphSession, GraphSessionError } from '../src/native/graph-session.ts';
import { tinyConfig, writeTinyHfModel } from '../src/testing/tiny-model.ts';
import { native, skipUnlessNative } from './native-backend.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-graph-'));
const models: Record<string, ChatModel> = {};

beforeAll(async () => {
  models.llama = await loadModel(writeTinyHfModel(path.join(tmp, 'llama')));
  models.qwen2 = await loadModel(writeTinyHfModel(path.join(tmp, 'qwen2'), tinyConfig({ architecture: 'qwen2', attentionBias: true, numKvHeads: 1 }), 3));
});
afterAll(() => {
  for (const m of Object.values(models)) m.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});


/** fn's result with the graph forward switched off (the eager decoder). */
function eagerly<T>(fn: () => T): T {
  process.env[FORWARD_GRAPH_ENV] = '0';
  try {
    return fn();
  } finally {
    delete process.env[FORWARD_GRAPH_ENV];
  }
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

const prompts = [[261, 117, 115, 101, 114, 10, 104, 105], [104, 105, 33], [72, 101, 108, 108, 111, 44]];

describe.each(['llama', 'qwen2'])('graph forward (%s)', (name) => {
  it('equals the eager forward: all / last / no logits, hidden states, all layers, left padding', ({ skip }) => {
    skipUnlessNative(skip);
    const model = models[name];
    const { ids, mask } = padBatch(prompts, model.padId);
    const before = tf.memory().numTensors;
    for (const logitsFor of ['all', 'last', 'none'] as const) {
      const graph = model.forward({ inputIds: ids, attentionMask: mask, logitsFor });
      const eager = eagerly(() => model.forward({ inputIds: ids, attentionMask: mask, logitsFor }));
      expect(maxAbsDiff(graph.logits, eager.logits)).toBeLessThan(1e-4);
      expect(maxAbsDiff(graph.lastHidden, eager.lastHidden)).toBeLessThan(1e-4);
      tf.dispose([graph.logits, graph.lastHidden, eager.logits, eager.lastHidden]);
    }
    const graph = model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'none', allLayers: true });
    const eager = eagerly(() => model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'none', allLayers: true }));
    expect(graph.layers).toHaveLength(model.config.numLayers + 1);
    graph.layers!.forEach((layer, i) => expect(maxAbsDiff(layer, eager.layers![i])).toBeLessThan(1e-4));
    tf.dispose([graph.logits, graph.lastHidden, eager.logits, eager.lastHidden, ...graph.layers!, ...eager.layers!]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('prefill and decoding steps agree with the eager cache path, mixed on one cache', ({ skip }) => {
    skipUnlessNative(skip);
    const model = models[name];
    const { ids, mask } = padBatch(prompts, model.padId);
    const before = tf.memory().numTensors;
    const x = model.embed(ids);
    const graphPrefill = model.forwardWithCache(x, mask, null);
    const eagerPrefill = eagerly(() => model.forwardWithCache(x, mask, null));
    expect(maxAbsDiff(graphPrefill.lastLogits, eagerPrefill.lastLogits)).toBeLessThan(1e-4);
    graphPrefill.cache.forEach((c, i) => {
      expect(maxAbsDiff(c.keysT, eagerPrefill.cache[i].keysT)).toBeLessThan(1e-4);
      expect(maxAbsDiff(c.values, eagerPrefill.cache[i].values)).toBeLessThan(1e-4);
    });
    // One new token per row: graph step on the eager cache vs eager step on the graph cache.
    const stepMask = mask.map((m) => [...m, 1]);
    const step = model.embed(prompts.map((p) => [p[0]]));
    const graphStep = model.forwardWithCache(step, stepMask, eagerPrefill.cache);
    const eagerStep = eagerly(() => model.forwardWithCache(step, stepMask, graphPrefill.cache));
    expect(maxAbsDiff(graphStep.lastLogits, eagerStep.lastLogits)).toBeLessThan(1e-4);
    // And both equal a full forward over the longer sequence.
    const full = eagerly(() => model.forward({ inputIds: ids.map((row, r) => [...row, prompts[r][0]]), attentionMask: stepMask, logitsFor: 'last' }));
    const graphStepLogits = tf.reshape(graphStep.lastLogits, full.logits.shape);
    expect(maxAbsDiff(graphStepLogits, full.logits)).toBeLessThan(1e-4);
    for (const out of [graphPrefill, eagerPrefill, graphStep, eagerStep]) tf.dispose([out.lastLogits, ...out.cache.flatMap((c) => [c.keysT, c.values])]);
    tf.dispose([x, step, full.logits, full.lastHidden, graphStepLogits]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('under tf.grad, its derived backward graph gives eager backprop\'s gradient (hidden and logits losses)', ({ skip }) => {
    skipUnlessNative(skip);
    const model = models[name];
    const { ids, mask } = padBatch(prompts, model.padId);
    const embeds = model.embed(ids);
    const direction = tf.randomNormal([model.config.hiddenSize], 0, 1, 'float32', 3);
    const before = tf.memory().numTensors;
    for (const logitsFor of ['none', 'all'] as const) {
      const gradient = () => tf.grad((x: tf.Tensor) => {
        const out = model.forward({ inputsEmbeds: x as tf.Tensor3D, attentionMask: mask, logitsFor, checkpoint: false });
        const hiddenLoss = tf.sum(tf.mul(out.lastHidden, direction));
        return logitsFor === 'all' ? tf.add(hiddenLoss, tf.mean(out.logits)) : hiddenLoss;
      })(embeds);
      const graph = gradient();
      const eager = eagerly(gradient);
      const scale = tf.tidy(() => tf.max(tf.abs(eager)).dataSync()[0]);
      expect(scale).toBeGreaterThan(1);
      expect(maxAbsDiff(graph, eager) / scale).toBeLessThan(1e-5);
      tf.dispose([graph, eager]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([embeds, direction]);
  });

  it('generates the same tokens as eager decoding (greedy and sampled, several samples)', async ({ skip }) => {
    skipUnlessNative(skip);
    const model = models[name];
    const options = { inputIds: prompts, maxNewTokens: 12, stopTokenIds: [] as number[] };
    const tokens = (r: Awaited<ReturnType<typeof generate>>) => r.sequences.map((s) => s.map((x) => x.tokenIds));
    const greedy = await generate(model, { ...options, greedy: true });
    const sampled = await generate(model, { ...options, samples: 2, temperature: 0.9, topK: 20, seed: 5 });
    process.env[FORWARD_GRAPH_ENV] = '0';
    try {
      expect(tokens(await generate(model, { ...options, greedy: true }))).toEqual(tokens(greedy));
      expect(tokens(await generate(model, { ...options, samples: 2, temperature: 0.9, topK: 20, seed: 5 }))).toEqual(tokens(sampled));
    } finally {
      delete process.env[FORWARD_GRAPH_ENV];
    }
  });
});

describe('graph forward gating', () => {
  it('a plain graph call is not used while tf.grad records', ({ skip }) => {
    skipUnlessNative(skip);
    expect(forwardGraphUsable()).toBe(true);
    let usableInside: boolean | null = null;
    const x = tf.scalar(2);
    const grad = tf.grad((v: tf.Tensor) => {
      usableInside = forwardGraphUsable();
      return tf.square(v);
    })(x);
    expect(usableInside).toBe(false);
    expect(grad.dataSync()[0]).toBe(4);
    tf.dispose([x, grad]);
  });

  it('falls back to eager ops, with one warning, when TensorFlow refuses the graph', async ({ skip }) => {
    skipUnlessNative(skip);
    // A libtensorflow without one of the graph's ops refuses it at load time; simulate that refusal.
    const model = await loadModel(writeTinyHfModel(path.join(tmp, 'refused')));
    const load = vi.spyOn(GraphSession, 'load').mockImplementation(() => {
      throw new GraphSessionError('TensorFlow could not load the graph (1 nodes): Op type not registered');
    });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const { ids, mask } = padBatch(prompts, model.padId);
      const first = model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'last' });
      const second = model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'last' });
      const eager = eagerly(() => model.forward({ inputIds: ids, attentionMask: mask, logitsFor: 'last' }));
      expect(maxAbsDiff(first.logits, eager.logits)).toBe(0);
      expect(load).toHaveBeenCalledTimes(1);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      expect(warnings.filter((m) => m.includes('running the model eagerly'))).toHaveLength(1);
      tf.dispose([first.logits, first.lastHidden, second.logits, second.lastHidden, eager.logits, eager.lastHidden]);
    } finally {
      process.off('warning', onWarning);
      load.mockRestore();
      model.dispose();
    }
  });

  it('is off with DRO_FORWARD_GRAPH=0 and on the other backends', () => {
    expect(eagerly(() => forwardGraphUsable())).toBe(false);
    expect(forwardGraphUsable()).toBe(native());
  });
});

describe('GraphSession', () => {
  it('runs a hand-built graph with dynamic shapes and returns tracked tensors', ({ skip }) => {
    skipUnlessNative(skip);
    const g = new GraphBuilder();
    const a = g.placeholder('a', DT_FLOAT, [-1, 2]);
    const sum = g.op('AddV2', [a, g.constFloat(Float32Array.of(10, 20), [2])], { T: { type: DT_FLOAT } });
    const session = GraphSession.load(g);
    const input = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const [out] = session.run([{ name: 'a', tensor: input }], [sum]);
    expect(out.arraySync()).toEqual([[11, 22], [13, 24], [15, 26]]);
    session.dispose();
    expect(() => session.run([{ name: 'a', tensor: input }], [sum])).toThrow(/after dispose/);
    tf.dispose([input, out]);
  });

  it('reports a graph TensorFlow rejects with a GraphSessionError', ({ skip }) => {
    skipUnlessNative(skip);
    const g = new GraphBuilder();
    g.op('NoSuchTensorFlowOp', [], {});
    expect(() => GraphSession.load(g)).toThrow(GraphSessionError);
    expect(() => GraphSession.load(g)).toThrow(/could not load the graph \(1 nodes\).*NoSuchTensorFlowOp/s);
  });

  it('refuses to load on a backend other than tensorflow', ({ skip }) => {
    if (native()) skip();
    expect(() => GraphSession.load(new GraphBuilder())).toThrow(/need the 'tensorflow' backend/);
  });
});
