import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DirectionsReport, LocalArtifactStore, columnValues, vectorValues } from '@dro/artifacts';
import { loadModel, tf } from '@dro/llm';
import { requireSmolLm2Gguf } from '@dro/llm/weights';
import { createProgressReporter, runDag } from '@dro/pipeline';
import { chainDag, chainStages } from './chain.ts';


describe('analysis chain on SmolLM2-135M-Instruct (small subset)', () => {
  it('runs end to end; extracted states equal model.forward; labels and directions are sane', { timeout: 900_000 }, async () => {
    const modelPath = requireSmolLm2Gguf();
    const store = new LocalArtifactStore({ root: mkdtempSync(path.join(os.tmpdir(), 'dro-chain-smol-')) });
    const dag = await chainDag(store, {
      modelPath,
      prep: { limitPerLabel: 3, promptVariants: ['none', 'default'] },
      sampling: { samples: 2, minNewTokens: 4, maxNewTokens: 12 },
      extract: { batchSize: 4 },
    });
    const run = await runDag(dag, { store, stages: chainStages, concurrency: 1, progress: createProgressReporter({ mode: 'silent' }) });
    expect(run.nodes.filter((n) => n.error).map((n) => n.id)).toEqual([]);
    const outputs = (id: string) => run.nodes.find((n) => n.id === id)!.outputs;

    const rendered = await store.getTable(outputs('prep').rendered);
    expect(rendered.numRows).toBe(12);
    const hidden = await store.getTable(outputs('extract').hiddenStates);
    const { values, dim } = vectorValues(hidden, 'hidden');
    expect(dim).toBe(576);
    // The extracted vector of the first and last inputs equals a standalone forward's last position.
    const model = await loadModel(modelPath);
    try {
      for (const row of [0, 11]) {
        const ids = Array.from((rendered.getChild('token_ids')!.get(row) as { toArray(): Int32Array }).toArray());
        const out = model.forward({ inputIds: [ids], logitsFor: 'none' });
        const reference = out.lastHidden.dataSync().slice((ids.length - 1) * dim, ids.length * dim);
        tf.dispose([out.logits, out.lastHidden]);
        const extracted = values.subarray(row * dim, (row + 1) * dim);
        const scale = Math.max(...reference.map(Math.abs));
        const maxDiff = Math.max(...extracted.map((v, t) => Math.abs(v - reference[t])));
        expect(maxDiff / scale).toBeLessThan(1e-4);
      }
    } finally {
      model.dispose();
    }

    const samples = await store.getTable(outputs('sampling').samples);
    expect(samples.numRows).toBe(24);
    expect(columnValues<string>(samples, 'output', 'o').every((text) => text.length > 0)).toBe(true);
    const refusalProb = columnValues<number>(await store.getTable(outputs('refusal-logprob').scores), 'refusal_prob', 'p');
    expect(refusalProb.every((p) => p > 0 && p < 1)).toBe(true);

    const report = await store.getJson<DirectionsReport>(outputs('directions').report);
    expect(report.rows).toBe(12);
    const ratios = report.explainedVarianceRatio;
    expect(ratios[0]).toBeGreaterThan(ratios[3]);
    expect(ratios.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1);
    expect(report.harmfulness.folds).toHaveLength(10);
  });
});
