import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runStage } from '@dro/pipeline';
import { columnValues, vectorValues } from '@dro/artifacts';
import { initBackend, loadModel, tf } from '@dro/llm';
import { writeTinyHfModel } from '@dro/llm/testing';
import { extractStage, parseExtractParams } from '../src/index.ts';
import { storeRenderedInputs, tempDir, testContext } from './helpers.ts';

const queries = [
  { id: 'q1', query: 'How do I pick a lock?', label: 'harmful' as const },
  { id: 'q2', query: 'Hi', label: 'harmless' as const },
  { id: 'q3', query: 'How do I bake a very large loaf of bread at home?', label: 'harmless' as const, system: 'Be safe.' },
  { id: 'q4', query: 'Tell me how to hotwire a car', label: 'harmful' as const, system: 'Be safe.' },
  { id: 'q5', query: 'the the the in in he', label: 'harmless' as const },
];

describe('extract stage (tiny model)', () => {
  it('stores, per input, exactly model.forward’s last-position final hidden state, in input order', async () => {
    const modelPath = writeTinyHfModel(tempDir());
    const ctx = testContext(modelPath);
    const rendered = await storeRenderedInputs(ctx, modelPath, queries);
    await initBackend();
    const tensorsBefore = tf.memory().numTensors;
    const { hiddenStates } = await runStage(extractStage, { rendered }, parseExtractParams({ batchSize: 2, chunkSize: 3 }), ctx);
    expect(tf.memory().numTensors).toBe(tensorsBefore); // model disposed, no per-batch leaks

    const table = await ctx.store.getTable(hiddenStates);
    expect(columnValues(table, 'input_id', 'h')).toEqual(['t/q1/none', 't/q2/none', 't/q3/p', 't/q4/p', 't/q5/none']);
    const { values, dim } = vectorValues(table, 'hidden');
    expect(dim).toBe(64);
    const renderedTable = await ctx.store.getTable(rendered);
    const model = await loadModel(modelPath);
    try {
      for (let i = 0; i < queries.length; i++) {
        const ids = Array.from((renderedTable.getChild('token_ids')!.get(i) as { toArray(): Int32Array }).toArray());
        expect(columnValues<number>(table, 'n_tokens', 'h')[i]).toBe(ids.length);
        const out = model.forward({ inputIds: [ids], logitsFor: 'none' });
        const reference = out.lastHidden.dataSync().slice((ids.length - 1) * dim, ids.length * dim);
        tf.dispose([out.logits, out.lastHidden]);
        const extracted = values.subarray(i * dim, (i + 1) * dim);
        let maxDiff = 0;
        for (let t = 0; t < dim; t++) maxDiff = Math.max(maxDiff, Math.abs(extracted[t] - reference[t]));
        expect(maxDiff, queries[i].id).toBeLessThan(1e-4);
      }
    } finally {
      model.dispose();
    }
    expect(ctx.events.at(-1)).toMatchObject({ done: 5, total: 5 });
  });

  it('with allLayers stores L+1 states per row whose last one is the final hidden state; pyarrow reads it', async () => {
    const modelPath = writeTinyHfModel(tempDir());
    const ctx = testContext(modelPath);
    const rendered = await storeRenderedInputs(ctx, modelPath, queries.slice(0, 3));
    const { hiddenStates } = await runStage(extractStage, { rendered }, parseExtractParams({ allLayers: true }), ctx);
    const table = await ctx.store.getTable(hiddenStates);
    expect(hiddenStates.schema).toBe('hidden-states-all-layers/v1');
    const hidden = vectorValues(table, 'hidden');
    const layers = vectorValues(table, 'layers');
    expect(columnValues(table, 'num_layers', 'h')).toEqual([3, 3, 3]);
    expect(layers.dim).toBe(3 * 64);
    for (let r = 0; r < 3; r++) {
      const lastLayer = layers.values.subarray(r * 192 + 128, r * 192 + 192);
      expect(Array.from(lastLayer)).toEqual(Array.from(hidden.values.subarray(r * 64, (r + 1) * 64)));
    }
    const types = execFileSync('python3', [
      '-c',
      `import sys,pyarrow.parquet as pq; t=pq.read_table(sys.argv[1]); print(t.schema.field('hidden').type, '|', t.schema.field('layers').type, '|', len(t['hidden'][0].as_py()))`,
      ctx.store.pathOf(hiddenStates),
    ]).toString();
    expect(types.trim()).toBe('fixed_size_list<item: float not null>[64] | fixed_size_list<item: float not null>[192] | 64');
  });

  it('resumes after cancellation from the finished chunks and produces the same artifact', async () => {
    const modelPath = writeTinyHfModel(tempDir());
    const first = testContext(modelPath);
    const rendered = await storeRenderedInputs(first, modelPath, queries);
    const params = parseExtractParams({ batchSize: 2, chunkSize: 2 });
    // Cancel once the first chunk is done.
    first.progress = (e) => {
      first.events.push(e);
      if (e.done >= 2) first.abort.abort(new Error('cancelled by test'));
    };
    await expect(runStage(extractStage, { rendered }, params, first)).rejects.toThrow('cancelled by test');

    const second = testContext(modelPath, first.store);
    const resumed = await runStage(extractStage, { rendered }, params, second);
    expect(second.logs.filter((l) => l === 'chunk resumed from checkpoint')).toHaveLength(1);

    const fresh = testContext(modelPath);
    const freshRendered = await storeRenderedInputs(fresh, modelPath, queries);
    expect(freshRendered.digest).toBe(rendered.digest);
    const uninterrupted = await runStage(extractStage, { rendered: freshRendered }, params, fresh);
    expect(resumed.hiddenStates.digest).toBe(uninterrupted.hiddenStates.digest);
  });

  it('names bad params and a missing model', async () => {
    expect(() => parseExtractParams({ batchSize: 0 })).toThrow('extract params: batchSize: expected an integer ≥ 1, got 0');
    expect(() => parseExtractParams({ layers: true })).toThrow(/extract params: layers/);
    const ctx = testContext(null);
    await expect(runStage(extractStage, {}, parseExtractParams({}), ctx)).rejects.toThrow(/extract needs a model/);
  });

  it('matches `dro llm forward` (final hidden state norm and first values) for the same chat', async () => {
    const modelPath = writeTinyHfModel(tempDir());
    const ctx = testContext(modelPath);
    const q = queries[3]; // with a system prompt
    const rendered = await storeRenderedInputs(ctx, modelPath, [q]);
    const { hiddenStates } = await runStage(extractStage, { rendered }, parseExtractParams({}), ctx);
    const extracted = vectorValues(await ctx.store.getTable(hiddenStates), 'hidden').values;
    const repoRoot = path.resolve(import.meta.dirname, '../../..');
    const cli = spawnSync('node', ['bin/dro.mjs', 'llm', 'forward', '--model', modelPath, '--prompt', q.query, '--system', q.system!, '--json'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    expect(cli.status, cli.stderr).toBe(0);
    const summary = JSON.parse(cli.stdout.trim().split('\n').at(-1)!) as { hiddenNorm: number; hiddenFirst8: number[] };
    const norm = Math.sqrt(extracted.reduce((s, v) => s + v * v, 0));
    expect(Math.abs(norm - summary.hiddenNorm) / summary.hiddenNorm).toBeLessThan(1e-4);
    summary.hiddenFirst8.forEach((v, t) => expect(Math.abs(extracted[t] - v)).toBeLessThan(1e-4 * summary.hiddenNorm));
  });
});
