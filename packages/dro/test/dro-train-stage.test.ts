/**
 * The dro-train stage end to end on the tiny model and a real store: outputs, their read-back in Python,
 * the direction of the learned shift, ablations, cancellation, bad input, and no leaked tensors.
 */
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStage } from '@dro/pipeline';
import { BadInputError, columnValues, type ArtifactRef, type TrainingObjective } from '@dro/artifacts';
import { loadModel, type ChatModel } from '@dro/llm';
import { droTrainStage } from '../src/stage.ts';
import { effectiveWeights } from '../src/params.ts';
import { loadTinyModel } from './helpers.ts';
import { putDirections, putRendered, stageContext, tempStore } from './fixtures.ts';

const PROMPT = 'Be safe and kind.';
const FAST = { promptId: 'basic', batchSize: 4, microBatchSize: 4, epochs: 3, lr: 0.01, nearestTokens: 3 };

describe('dro-train stage (tiny model)', () => {
  let dir: string;
  let model: ChatModel;
  const store = tempStore();
  let rendered: ArtifactRef;
  let directions: ArtifactRef;

  beforeAll(async () => {
    ({ dir } = await loadTinyModel());
    model = await loadModel(dir);
    rendered = await putRendered(store, model, { none: null, basic: PROMPT });
    directions = await putDirections(store, model.config.hiddenSize);
  });
  afterAll(() => model?.dispose());

  it('trains, writes the soft prompt (read back by Python), curve, nearest tokens and shifts', async () => {
    const { ctx, events } = stageContext(store, dir);
    const before = tf.memory().numTensors;
    const params = droTrainStage.parseParams!(FAST);
    const out = await runStage(droTrainStage, { rendered, directions }, params, ctx);
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(out).sort()).toEqual(['curve', 'nearestTokens', 'shift', 'softPrompt']);

    const nTokens = model.tokenizer.encode(PROMPT, { addSpecialTokens: false }).length;
    const tensors = await store.getTensors(out.softPrompt!);
    expect(tensors.soft_prompt!.shape).toEqual([nTokens, model.config.hiddenSize]);
    const py = execFileSync('python3', [
      '-c',
      'import sys, json; from safetensors.numpy import load_file; from safetensors import safe_open\n' +
        't = load_file(sys.argv[1])["soft_prompt"]\n' +
        'm = safe_open(sys.argv[1], "np").metadata()\n' +
        'print(json.dumps({"shape": list(t.shape), "dtype": str(t.dtype), "values": t.flatten().tolist(), "meta": m}))',
      store.pathOf(out.softPrompt!),
    ]).toString();
    const fromPython = JSON.parse(py) as { shape: number[]; dtype: string; values: number[]; meta: Record<string, string> };
    expect(fromPython.shape).toEqual([nTokens, model.config.hiddenSize]);
    expect(fromPython.dtype).toBe('float32');
    expect(Float32Array.from(fromPython.values)).toEqual(tensors.soft_prompt!.data);
    expect(fromPython.meta.method).toBe('dro');
    expect(JSON.parse(fromPython.meta.init_token_ids!)).toEqual(model.tokenizer.encode(PROMPT, { addSpecialTokens: false }));

    // 12 queries, batch 4, 3 epochs → 9 steps, each with total/refusal/harmfulness/norm/grad_norm.
    const curve = await store.getTable(out.curve!);
    const steps = columnValues<number>(curve, 'step', 'curve');
    expect(Math.max(...steps)).toBe(9);
    expect(new Set(columnValues<string>(curve, 'term', 'curve'))).toEqual(new Set(['total', 'refusal', 'harmfulness', 'norm', 'grad_norm']));
    expect(events.at(-1)).toMatchObject({ done: 9, total: 9 });

    // At step 1 the soft prompt equals the basic prompt: Δ = 0, so the refusal term is BCE(0, y) = ln 2.
    const refusal = columnValues<number>(curve, 'value', 'curve').filter((_, i) => columnValues<string>(curve, 'term', 'curve')[i] === 'refusal');
    expect(refusal[0]).toBeCloseTo(Math.LN2, 4);

    // The learned shift goes the intended way: harmful toward refusal (r down), harmless away (r up).
    const shift = await store.getTable(out.shift!);
    const label = columnValues<string>(shift, 'label', 'shift');
    const delta = columnValues<number>(shift, 'soft_refusal_logit', 'shift').map((s, i) => s - columnValues<number>(shift, 'base_refusal_logit', 'shift')[i]!);
    const mean = (l: string) => delta.filter((_, i) => label[i] === l).reduce((a, b) => a + b, 0) / 6;
    expect(mean('harmful')).toBeLessThan(mean('harmless'));
    // And the refusal term over all training queries fell below its starting value ln 2.
    const bce = (x: number, y: number) => Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
    const finalRefusal = delta.reduce((s, x, i) => s + bce(x, label[i] === 'harmless' ? 1 : 0), 0) / delta.length;
    expect(finalRefusal).toBeLessThan(Math.LN2 - 0.01);

    const nearest = await store.getTable(out.nearestTokens!);
    expect(nearest.numRows).toBe(nTokens * 3);
  });

  it('records its training objective in the manifest: met when it trains, not met when the prompt cannot move', async () => {
    const { ctx } = stageContext(store, dir);
    const objectiveOf = async (out: Record<string, ArtifactRef>) =>
      ((await store.manifest(out.shift!.digest)).summary as { objective: TrainingObjective; effectiveLr: number });
    const trained = await objectiveOf(await runStage(droTrainStage, { rendered, directions }, droTrainStage.parseParams!({ ...FAST, epochs: 20 }), ctx));
    expect(trained.objective.met, trained.objective.shortfalls.join('; ')).toBe(true);
    expect(trained.objective.harmful.meanShift).toBeLessThan(-trained.objective.minMeanShift);
    expect(trained.objective.harmless.meanShift).toBeGreaterThan(trained.objective.minMeanShift);
    expect(trained.effectiveLr).toBe(FAST.lr);

    // A step size far too small to move the prompt: every shift is ~1e-9, so the objective is not met.
    const stuck = await objectiveOf(await runStage(droTrainStage, { rendered, directions }, droTrainStage.parseParams!({ ...FAST, lr: 1e-9 }), ctx));
    expect(stuck.objective.met).toBe(false);
    expect(stuck.objective.shortfalls.join('; ')).toMatch(/harmful queries (barely moved|did not move)/);

    // lrUnit "prompt-rms" scales the step by the initial prompt's RMS.
    const relative = await objectiveOf(await runStage(droTrainStage, { rendered, directions }, droTrainStage.parseParams!({ ...FAST, epochs: 1, lr: 0.5, lrUnit: 'prompt-rms' }), ctx));
    const ids = model.tokenizer.encode(PROMPT, { addSpecialTokens: false });
    const init = tf.tidy(() => model.embed([ids]).dataSync());
    const rms = Math.sqrt(Array.from(init).reduce((s, v) => s + v * v, 0) / init.length);
    expect(relative.effectiveLr).toBeCloseTo(0.5 * rms, 6);
  });

  it('ablations switch their term off and are recorded in the metadata', async () => {
    const { ctx } = stageContext(store, dir);
    const out = await runStage(droTrainStage, { rendered, directions }, droTrainStage.parseParams!({ ...FAST, epochs: 1, variant: 'no-refusal' }), ctx);
    const meta = JSON.parse(
      execFileSync('python3', ['-c', 'import sys, json; from safetensors import safe_open; print(json.dumps(safe_open(sys.argv[1], "np").metadata()))', store.pathOf(out.softPrompt!)]).toString(),
    );
    expect(meta.method).toBe('dro:no-refusal');
    const curve = await store.getTable(out.curve!);
    const terms = columnValues<string>(curve, 'term', 'curve');
    const values = columnValues<number>(curve, 'value', 'curve');
    const pick = (t: string) => values.filter((_, i) => terms[i] === t);
    // As published: without the refusal term the harmfulness weight becomes 1: total = harmfulness + 1e-3·norm.
    pick('total').forEach((total, i) => expect(total).toBeCloseTo(pick('harmfulness')[i]! + 1e-3 * pick('norm')[i]!, 6));
  });

  it('the published ablation weights, and ablationWeights {} only zeroes the ablated term', () => {
    const weightsOf = (variant: string, extra: Record<string, unknown> = {}) => effectiveWeights(droTrainStage.parseParams!({ ...FAST, variant, ...extra }));
    expect(weightsOf('no-refusal')).toEqual({ refusal: 0, harmfulness: 1, norm: 1e-3 });
    expect(weightsOf('no-harmfulness')).toEqual({ refusal: 1, harmfulness: 0, norm: 1e-3 });
    expect(weightsOf('no-norm')).toEqual({ refusal: 1, harmfulness: 1e-2, norm: 0 });
    expect(weightsOf('dro')).toEqual({ refusal: 1, harmfulness: 1e-2, norm: 1e-3 });
    expect(weightsOf('no-refusal', { ablationWeights: {} })).toEqual({ refusal: 0, harmfulness: 1e-2, norm: 1e-3 });
    expect(() => weightsOf('no-refusal', { ablationWeights: { 'no-refusal': { refusal: 1 } } })).toThrow(/ablationWeights.no-refusal.refusal: expected no weight for the term this ablation switches off/);
    expect(() => weightsOf('dro', { ablationWeights: { 'no-nrom': {} } })).toThrow(/ablationWeights.no-nrom/);
  });

  it('stops when cancelled', async () => {
    const abort = new AbortController();
    abort.abort();
    const { ctx } = stageContext(store, dir, abort.signal);
    await expect(runStage(droTrainStage, { rendered, directions }, droTrainStage.parseParams!(FAST), ctx)).rejects.toThrow(/cancelled/);
  });

  it('rejects bad params and inputs with errors that name the field', async () => {
    expect(() => droTrainStage.parseParams!({ ...FAST, lr: -1 })).toThrow(/dro-train params: lr: expected a positive number/);
    expect(() => droTrainStage.parseParams!({ ...FAST, variant: 'nope' })).toThrow(/variant/);
    expect(() => droTrainStage.parseParams!({ ...FAST, bacthSize: 3 })).toThrow(/bacthSize/);
    expect(() => droTrainStage.parseParams!({ batchSize: 3 })).toThrow(/promptId/);
    expect(droTrainStage.parseParams!({ ...FAST, maxGradNorm: null }).maxGradNorm).toBeNull();
    expect(droTrainStage.parseParams!(FAST)).toMatchObject({ maxGradNorm: 1, weightDecay: 0.01, epochs: 3, variant: 'dro', lossWeights: { refusal: 1, harmfulness: 0.01, norm: 0.001 } });
    expect(() => droTrainStage.parseParams!({ ...FAST, lossWeights: { refusal: 0, harmfulness: 0, norm: 0 } })).toThrow(/lossWeights/);
    expect(() => droTrainStage.parseParams!({ ...FAST, lossWeights: { refusl: 1 } })).toThrow(/lossWeights.refusl/);
    const { ctx } = stageContext(store, dir);
    const err = await runStage(droTrainStage, { rendered, directions }, droTrainStage.parseParams!({ ...FAST, promptId: 'missing' }), ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as Error).message).toMatch(/no rows with prompt_id "missing" .*prompt ids present: none, basic/);
    const swapped = await runStage(droTrainStage, { rendered: directions, directions: rendered }, droTrainStage.parseParams!(FAST), ctx).catch((e: unknown) => e);
    expect((swapped as Error).message).toMatch(/stage dro-train input "rendered" is a directions\/v1 artifact, expected rendered-inputs\/v1/);
  });
});
