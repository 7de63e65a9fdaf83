/**
 * Measures the analysis half of the experiment (data-prep → labels → hidden states → directions) on a model
 * with the project's data, with both label sources side by side: the refusal rate per prompt variant ×
 * label (sampled, judged), the refusal-logprob labels beside the sampled ones (their agreement), and each
 * direction fit's PCA explained variance and held-out boundary accuracies. Prints tables and writes a JSON
 * summary.
 *
 *   node bin/tsnode.mjs tools/measure/analysis-chain.ts [--model ID|PATH] [--limit 6] [--samples 4]
 *     [--max-tokens 40] [--store DIR] [--out FILE] [--logprob-only]
 *
 * It runs the experiment's own DAG (the quick preset, `dro stage directions` twice: labelSource sampling and
 * logprob) in one store, so the shared nodes run once and a rerun is all cache hits.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readComplianceScores, readSamples, type DirectionsReport } from '@dro/artifacts';
import { dagFor, droStageRegistry, prepareExperiment, resolveConfig, type ExperimentConfig } from '@dro/experiment';
import { resolveModelArgument, SMOLLM2_ID } from '@dro/llm/weights';
import { createProgressReporter, runDag, type RunRecord } from '@dro/pipeline';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: SMOLLM2_ID },
    limit: { type: 'string', default: '6' },
    samples: { type: 'string', default: '4' },
    'max-tokens': { type: 'string', default: '40' },
    store: { type: 'string', default: path.join(os.tmpdir(), 'dro-analysis-chain') },
    out: { type: 'string', default: 'analysis-chain.json' },
    /** Labels from refusal log-probabilities only: no sampling (much faster on CPU). */
    'logprob-only': { type: 'boolean', default: false },
  },
});
const logprobOnly = values['logprob-only'] === true;
const maxTokens = Number(values['max-tokens']);
const modelId = 'model';

function configFor(labelSource: ExperimentConfig['labelSource']): ExperimentConfig {
  const base = resolveConfig(undefined, 'quick');
  return {
    ...base,
    name: 'analysis-chain',
    models: [{ id: modelId, path: resolveModelArgument(values.model!) }],
    labelSource,
    store: values.store,
    overrides: {
      'data-prep:train': { limitPerLabel: Number(values.limit) },
      'sampling:train': { samples: Number(values.samples), maxNewTokens: { harmful: maxTokens, harmless: maxTokens } },
    },
  };
}

/** `dro stage directions` for one label source: the node outputs by id, and the run's record. */
async function runDirections(labelSource: ExperimentConfig['labelSource']): Promise<{ outputs: (id: string) => RunRecord['nodes'][number]['outputs']; record: RunRecord; store: Awaited<ReturnType<typeof prepareExperiment>>['store'] }> {
  const prepared = await prepareExperiment(configFor(labelSource));
  const dag = dagFor(prepared.dag, 'directions');
  const record = await runDag(dag, { store: prepared.store, stages: droStageRegistry(), concurrency: 1, progress: createProgressReporter({ mode: 'json', throttleMs: 30_000 }) });
  if (record.status !== 'succeeded') throw new Error(`analysis (${labelSource}) ${record.status}: ${JSON.stringify(record.nodes.filter((n) => n.error).map((n) => [n.id, n.error]))}`);
  return { outputs: (id) => record.nodes.find((n) => n.id === `${id}@${modelId}`)!.outputs, record, store: prepared.store };
}

const started = performance.now();
const logprob = await runDirections('logprob');
const sampled = logprobOnly ? null : await runDirections('sampling');
const store = logprob.store;

// Refusal per prompt × label: of all sampled responses, of queries with at least one refusal, and the labels.
interface Group { samples: number; refused: number; inputs: Set<string>; refusedInputs: Set<string>; logprob: number[]; sampledCompliance: number[] }
const groups = new Map<string, Group>();
const group = (prompt: string, label: string) => {
  const key = `${prompt}\t${label}`;
  if (!groups.has(key)) groups.set(key, { samples: 0, refused: 0, inputs: new Set(), refusedInputs: new Set(), logprob: [], sampledCompliance: [] });
  return groups.get(key)!;
};
for (const s of sampled ? await readSamples(store, sampled.outputs('sample-train').samples!) : []) {
  const g = group(s.promptId, s.label);
  g.samples++;
  g.inputs.add(s.inputId);
  if (s.refused) {
    g.refused++;
    g.refusedInputs.add(s.inputId);
  }
}
const logprobScores = (await store.getTable(logprob.outputs('refusal-logprob').scores!)).toArray() as { input_id: string; prompt_id: string; label: string; refusal_prob: number }[];
const sampledScores = sampled ? (await readComplianceScores(store, sampled.outputs('sample-train').scores!)).byInput : null;
for (const row of logprobScores) {
  const g = group(row.prompt_id, row.label);
  g.logprob.push(row.refusal_prob);
  g.sampledCompliance.push(sampledScores?.get(row.input_id) ?? NaN);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
function pearson(a: number[], b: number[]): number {
  const [ma, mb] = [mean(a), mean(b)];
  let [num, da, db] = [0, 0, 0];
  a.forEach((x, i) => {
    num += (x - ma) * (b[i]! - mb);
    da += (x - ma) ** 2;
    db += (b[i]! - mb) ** 2;
  });
  return da > 0 && db > 0 ? num / Math.sqrt(da * db) : NaN;
}
/** Ranks with ties averaged (for Spearman's correlation). */
function ranks(xs: number[]): number[] {
  const order = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
  const out = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    for (let t = i; t <= j; t++) out[order[t]![1]] = (i + j) / 2;
    i = j + 1;
  }
  return out;
}

const rows = [...groups.entries()].map(([key, g]) => {
  const [prompt, label] = key.split('\t');
  return {
    prompt,
    label,
    inputs: g.logprob.length,
    sampleRefusalRate: g.refused / g.samples,
    queriesWithAnyRefusal: g.refusedInputs.size / g.inputs.size,
    meanSampledCompliance: mean(g.sampledCompliance),
    meanLogprobRefusal: mean(g.logprob),
  };
});
const boundary = (b: DirectionsReport['refusal']) => ({ meanHeldOutAccuracy: b.meanHeldOutAccuracy, meanHeldOutBce: b.meanHeldOutBce, allRowsAccuracy: b.allRowsAccuracy, epochs: b.folds.map((f) => f.epochs) });
const fits: Record<string, { rows: number; explainedVarianceRatio: number[]; refusal: ReturnType<typeof boundary>; harmfulness: ReturnType<typeof boundary> }> = {};
for (const [name, run] of sampled ? [['sampled', sampled], ['logprob', logprob]] as const : [['logprob', logprob]] as const) {
  const r = await store.getJson<DirectionsReport>(run.outputs('directions').report!);
  fits[name] = { rows: r.rows, explainedVarianceRatio: r.explainedVarianceRatio, refusal: boundary(r.refusal), harmfulness: boundary(r.harmfulness) };
}
const sampledCompliance = logprobScores.map((r) => sampledScores?.get(r.input_id) ?? NaN);
const logprobCompliance = logprobScores.map((r) => 1 - r.refusal_prob);
const summary = {
  model: values.model,
  params: { limitPerLabel: Number(values.limit), samples: Number(values.samples), maxNewTokens: maxTokens },
  seconds: (performance.now() - started) / 1000,
  nodeSeconds: Object.fromEntries([...(sampled?.record.nodes ?? []), ...logprob.record.nodes].map((n) => [n.id, (n.durationMs ?? 0) / 1000])),
  refusal: rows,
  labelAgreement: sampled ? { pearson: pearson(sampledCompliance, logprobCompliance), spearman: pearson(ranks(sampledCompliance), ranks(logprobCompliance)) } : null,
  directions: fits,
};
writeFileSync(values.out!, JSON.stringify(summary, null, 2));
// Without sampling (--logprob-only) the sampled columns have nothing to show.
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '—');
const fixed = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '—');
console.log(`\nanalysis chain on ${values.model}: ${summary.seconds.toFixed(0)} s`);
console.log('prompt    label     inputs  sample-refusal  any-refusal  mean-compliance  mean P(refusal opener)');
for (const r of rows) {
  console.log(`${r.prompt!.padEnd(9)} ${r.label!.padEnd(9)} ${String(r.inputs).padStart(6)}  ${pct(r.sampleRefusalRate).padStart(14)}  ${pct(r.queriesWithAnyRefusal).padStart(11)}  ${fixed(r.meanSampledCompliance).padStart(15)}  ${r.meanLogprobRefusal.toExponential(2).padStart(22)}`);
}
if (summary.labelAgreement) console.log(`label agreement (sampled vs logprob compliance): pearson ${summary.labelAgreement.pearson.toFixed(3)}, spearman ${summary.labelAgreement.spearman.toFixed(3)}`);
for (const [name, d] of Object.entries(fits)) {
  console.log(`directions (${name} labels): PCA ratios ${d.explainedVarianceRatio.map((x) => x.toFixed(3)).join(' ')}; refusal acc ${pct(d.refusal.meanHeldOutAccuracy)} (BCE ${d.refusal.meanHeldOutBce.toFixed(3)}); harmfulness acc ${pct(d.harmfulness.meanHeldOutAccuracy)} (BCE ${d.harmfulness.meanHeldOutBce.toFixed(3)})`);
}
console.log(`summary written to ${values.out}`);
