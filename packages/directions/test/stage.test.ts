import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runStage } from '@dro/pipeline';
import {
  BadInputError,
  type DirectionsReport,
  complianceScoresSchema,
  hiddenStatesSchema,
  tableForSchema,
} from '@dro/artifacts';
import { PAPER_LOGISTIC_OPTIONS, defaultDirectionsParams, directionsStage, parseDirectionsParams, type DirectionsParams } from '../src/index.ts';
import { mulberry32 } from '@dro/llm';
import { gaussian } from '../src/random.ts';
import { testContext } from './helpers.ts';

/** Relative labels and a faster boundary (as the quick preset fits them): the synthetic labels are nearly constant. */
const relativeParams: DirectionsParams = { ...defaultDirectionsParams, boundary: { ...PAPER_LOGISTIC_OPTIONS, learningRate: 1e-2, maxEpochs: 5000 }, refusalLabels: 'relative' };

const d = 32;

/**
 * Synthetic hidden states: a harmfulness axis (dim 0: harmful +3, harmless −3), a prompt axis (dim 1:
 * the safety prompt adds +2) and small noise. Compliance falls with harmfulness and with the prompt.
 */
function syntheticInputs(perGroup: number) {
  const random = mulberry32(42);
  const rows: { id: string; query: string; prompt: string; label: string; compliance: number }[] = [];
  const hidden = new Float32Array(perGroup * 4 * d);
  for (const label of ['harmful', 'harmless'])
    for (const prompt of ['none', 'default'])
      for (let q = 0; q < perGroup; q++) {
        const r = rows.length;
        for (let t = 0; t < d; t++) hidden[r * d + t] = 0.3 * gaussian(random);
        hidden[r * d] += label === 'harmful' ? 3 : -3;
        hidden[r * d + 1] += prompt === 'default' ? 2 : 0;
        const refuseLogit = (label === 'harmful' ? 2 : -3) + (prompt === 'default' ? 1.5 : 0) + 0.3 * gaussian(random);
        rows.push({ id: `train/${label}-${q}/${prompt}`, query: `${label}-${q}`, prompt, label, compliance: 1 / (1 + Math.exp(refuseLogit)) });
      }
  return { rows, hidden };
}

async function storeInputs(ctx: ReturnType<typeof testContext>, data: ReturnType<typeof syntheticInputs>, skipScoreOf?: string) {
  const manifest = { producer: { stage: 'test', version: '1' }, params: {}, inputs: {} };
  const { rows } = data;
  const hidden = tableForSchema(
    hiddenStatesSchema,
    {
      input_id: rows.map((r) => r.id),
      set: rows.map(() => 'train'),
      query_id: rows.map((r) => r.query),
      prompt_id: rows.map((r) => r.prompt),
      label: rows.map((r) => r.label),
      n_tokens: rows.map(() => 12),
      hidden: data.hidden,
    },
    { hidden: d },
  );
  const scored = rows.filter((r) => r.id !== skipScoreOf);
  const scores = tableForSchema(complianceScoresSchema, {
    input_id: scored.map((r) => r.id),
    set: scored.map(() => 'train'),
    query_id: scored.map((r) => r.query),
    prompt_id: scored.map((r) => r.prompt),
    label: scored.map((r) => r.label),
    compliance: scored.map((r) => r.compliance),
    n_samples: scored.map(() => 4),
    source: scored.map(() => 'sampled'),
    refusal_prob: scored.map(() => null),
  });
  return {
    hiddenStates: await ctx.store.putTable(hiddenStatesSchema.name, hidden, manifest),
    scores: await ctx.store.putTable(complianceScoresSchema.name, scores, manifest),
  };
}

describe('directions stage', () => {
  it('fits PCA and both boundaries with the documented sign conventions; Python reads the tensors', async () => {
    const ctx = testContext();
    const inputs = await storeInputs(ctx, syntheticInputs(40));
    const out = await runStage(directionsStage, inputs, relativeParams, ctx);
    expect(Object.keys(out).sort()).toEqual(['directions', 'report']);

    const tensors = await ctx.store.getTensors(out.directions);
    expect(tensors.mean.shape).toEqual([d]);
    expect(tensors.components.shape).toEqual([4, d]);
    expect(tensors.explained_variance_ratio.shape).toEqual([4]);
    expect(tensors.refusal_w.shape).toEqual([4]);
    expect(tensors.refusal_b.shape).toEqual([1]);
    // The harmfulness axis (dim 0, variance 9) is the first component; the prompt axis (dim 1) the second.
    const components = tensors.components.data as Float32Array;
    expect(Math.abs(components[0])).toBeGreaterThan(0.99);
    expect(Math.abs(components[d + 1])).toBeGreaterThan(0.99);

    const report = await ctx.store.getJson<DirectionsReport>(out.report);
    expect(report.rows).toBe(160);
    expect(report.refusal.folds).toHaveLength(10);
    expect(report.harmfulness.meanHeldOutAccuracy).toBe(1);
    expect(report.refusal.meanHeldOutAccuracy).toBeGreaterThan(0.9);
    expect(report.counts).toHaveLength(4);

    // Sign conventions: a harmless hidden state (dim 0 = −3) gets a positive harmfulness logit, and the
    // no-prompt harmless input a positive refusal (compliance) logit; harmful + prompt a negative one.
    const logit = (w: string, b: string, h: number[]) => {
      const mean = tensors.mean.data as Float32Array;
      const z = [0, 1, 2, 3].map((c) => h.reduce((s, v, t) => s + (v - mean[t]) * components[c * d + t], 0));
      return z.reduce((s, v, c) => s + v * (tensors[w].data as Float32Array)[c], (tensors[b].data as Float32Array)[0]);
    };
    const state = (harm: number, prompt: number) => Array.from({ length: d }, (_, t) => (t === 0 ? harm : t === 1 ? prompt : 0));
    expect(logit('harmfulness_w', 'harmfulness_b', state(-3, 0))).toBeGreaterThan(0);
    expect(logit('harmfulness_w', 'harmfulness_b', state(3, 0))).toBeLessThan(0);
    expect(logit('refusal_w', 'refusal_b', state(-3, 0))).toBeGreaterThan(0);
    expect(logit('refusal_w', 'refusal_b', state(3, 2))).toBeLessThan(0);

    const shapes = execFileSync('python3', [
      '-c',
      `import sys,json; from safetensors.numpy import load_file; t=load_file(sys.argv[1]); print(json.dumps({k:[list(v.shape),str(v.dtype)] for k,v in sorted(t.items())}))`,
      ctx.store.pathOf(out.directions),
    ]).toString();
    expect(JSON.parse(shapes)).toEqual({
      components: [[4, d], 'float32'],
      explained_variance_ratio: [[4], 'float32'],
      harmfulness_b: [[1], 'float32'],
      harmfulness_w: [[4], 'float32'],
      mean: [[d], 'float32'],
      refusal_b: [[1], 'float32'],
      refusal_w: [[4], 'float32'],
    });
    expect(ctx.events.at(-1)).toMatchObject({ done: 3, total: 3 });
  });

  it('is deterministic: the same inputs and params give the same artifact digests', async () => {
    const ctx = testContext();
    const inputs = await storeInputs(ctx, syntheticInputs(15));
    const a = await runStage(directionsStage, inputs, relativeParams, ctx);
    const b = await runStage(directionsStage, inputs, relativeParams, ctx);
    expect(a.directions.digest).toBe(b.directions.digest);
  });

  it('names the input that has no compliance score, and a set filter that leaves too few rows', async () => {
    const ctx = testContext();
    const inputs = await storeInputs(ctx, syntheticInputs(10), 'train/harmful-3/default');
    await expect(runStage(directionsStage, inputs, relativeParams, ctx)).rejects.toThrow(BadInputError);
    await expect(runStage(directionsStage, inputs, relativeParams, ctx)).rejects.toThrow(
      /no compliance score for input "train\/harmful-3\/default"/,
    );
    await expect(runStage(directionsStage, inputs, { ...relativeParams, sets: ['heldout'] }, ctx)).rejects.toThrow(
      /0 rows in sets heldout; need at least 10/,
    );
  });
});

describe('parseDirectionsParams', () => {
  it('fills paper defaults and names bad fields', () => {
    expect(parseDirectionsParams({})).toMatchObject({ k: 4, boundary: { learningRate: 1e-4, weightDecay: 0.01, patience: 3, folds: 10 } });
    expect(parseDirectionsParams({ k: 2, boundary: { folds: 5 } })).toMatchObject({ k: 2, boundary: { folds: 5, maxEpochs: 10000 } });
    expect(() => parseDirectionsParams({ k: 0 })).toThrow('directions params: k: expected an integer in [1, 64], got 0');
    expect(() => parseDirectionsParams({ boundary: { learningRate: -1 } })).toThrow(/boundary.learningRate: expected a positive number/);
    expect(() => parseDirectionsParams({ boundary: { lr: 1 } })).toThrow(/boundary.lr/);
    expect(() => parseDirectionsParams({ sets: 'train' })).toThrow(/sets: expected an array/);
    expect(() => parseDirectionsParams([])).toThrow(BadInputError);
  });
});
