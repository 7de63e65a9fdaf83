/**
 * Measure the analysis chain on SmolLM2-135M-Instruct with the project data (quick preset, a subset of
 * the training queries): refusal rate per prompt variant × label, refusal-logprob labels beside the
 * sampled ones, PCA explained variance and boundary accuracies. Prints tables and writes a JSON summary.
 *
 *   node --import tsx packages/directions/scripts/measure-smollm2.ts [--limit 6] [--samples 4] [--max-tokens 48] [--out FILE] [--logprob-only]
 *
 * Runs through the local runner on the default store (.dro/store or $DRO_STORE), so a rerun is cache hits.
 */
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type DirectionsReport, LocalArtifactStore, columnValues } from '@dro/artifacts';
import { createProgressReporter, runDag } from '@dro/pipeline';
import { quickSamplingParams } from '@dro/sampling';
import { chainDag, chainStages } from '../test/chain.ts';

const { values } = parseArgs({
  options: {
    limit: { type: 'string', default: '6' },
    samples: { type: 'string', default: String(quickSamplingParams.samples) },
    'max-tokens': { type: 'string', default: String(quickSamplingParams.maxNewTokens.harmful) },
    out: { type: 'string', default: 'smollm2-analysis.json' },
    /** Labels from refusal log-probabilities only: no sampling (much faster on CPU). */
    'logprob-only': { type: 'boolean', default: false },
  },
});
const cache = process.env.DRO_CACHE ?? path.join(os.homedir(), '.cache', 'dro');
const modelPath = path.join(cache, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
if (!existsSync(modelPath)) throw new Error(`SmolLM2 not found at ${modelPath}: run \`npm run setup\` first`);

const store = new LocalArtifactStore();
const maxTokens = Number(values['max-tokens']);
const dag = await chainDag(store, {
  modelPath,
  prep: { limitPerLabel: Number(values.limit) },
  sampling: { ...quickSamplingParams, samples: Number(values.samples), maxNewTokens: { harmful: maxTokens, harmless: maxTokens } },
});
const logprobOnly = values['logprob-only'] === true;
if (logprobOnly) dag.nodes = dag.nodes.filter((n) => n.id !== 'sampling' && n.id !== 'directions');
const started = performance.now();
const run = await runDag(dag, { store, stages: chainStages, concurrency: 1, progress: createProgressReporter({ mode: 'json', throttleMs: 30_000 }) });
if (run.status !== 'succeeded') throw new Error(`chain ${run.status}: ${JSON.stringify(run.nodes.filter((n) => n.error).map((n) => [n.id, n.error]))}`);
const outputs = (id: string) => run.nodes.find((n) => n.id === id)!.outputs;

const logprob = await store.getTable(outputs('refusal-logprob').scores);
const samples = logprobOnly ? null : await store.getTable(outputs('sampling').samples);
const sampled = logprobOnly ? null : await store.getTable(outputs('sampling').scores);
const col = <T,>(t: typeof logprob, c: string) => columnValues<T>(t, c, c);

// Refusal rates per prompt × label: of all samples, and of queries with at least one refusal.
const groups = new Map<string, { samples: number; refused: number; inputs: Set<string>; refusedInputs: Set<string>; logprob: number[]; sampledCompliance: number[] }>();
const keyOf = (prompt: string, label: string) => `${prompt}\t${label}`;
const group = (k: string) => {
  if (!groups.has(k)) groups.set(k, { samples: 0, refused: 0, inputs: new Set(), refusedInputs: new Set(), logprob: [], sampledCompliance: [] });
  return groups.get(k)!;
};
const [sPrompt, sLabel, sInput, sRefused] = samples
  ? [col<string>(samples, 'prompt_id'), col<string>(samples, 'label'), col<string>(samples, 'input_id'), col<boolean>(samples, 'refused')]
  : [[], [], [], []];
sInput.forEach((id, i) => {
  const g = group(keyOf(sPrompt[i], sLabel[i]));
  g.samples++;
  g.inputs.add(id);
  if (sRefused[i]) {
    g.refused++;
    g.refusedInputs.add(id);
  }
});
const lpProb = col<number>(logprob, 'refusal_prob');
const scCompliance = sampled ? col<number>(sampled, 'compliance') : lpProb.map(() => NaN);
col<string>(logprob, 'input_id').forEach((_, i) => {
  const g = group(keyOf(col<string>(logprob, 'prompt_id')[i], col<string>(logprob, 'label')[i]));
  g.logprob.push(lpProb[i]);
  g.sampledCompliance.push(scCompliance[i]);
});

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
function pearson(a: number[], b: number[]): number {
  const ma = mean(a);
  const mb = mean(b);
  let num = 0;
  let da = 0;
  let db = 0;
  a.forEach((x, i) => {
    num += (x - ma) * (b[i] - mb);
    da += (x - ma) ** 2;
    db += (b[i] - mb) ** 2;
  });
  return da > 0 && db > 0 ? num / Math.sqrt(da * db) : NaN;
}
const rank = (xs: number[]) => {
  const order = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
  const ranks = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let t = i; t <= j; t++) ranks[order[t][1]] = (i + j) / 2;
    i = j + 1;
  }
  return ranks;
};

const rows = [...groups.entries()].map(([k, g]) => {
  const [prompt, label] = k.split('\t');
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
const directions = Object.fromEntries(
  await Promise.all(
    (logprobOnly ? ['directions-logprob'] : ['directions', 'directions-logprob']).map(async (id) => {
      const r = await store.getJson<DirectionsReport>(outputs(id).report);
      const folds = (b: DirectionsReport['refusal']) => ({
        meanHeldOutAccuracy: b.meanHeldOutAccuracy,
        meanHeldOutBce: b.meanHeldOutBce,
        allRowsAccuracy: b.allRowsAccuracy,
        epochs: b.folds.map((f) => f.epochs),
      });
      return [id, { rows: r.rows, explainedVarianceRatio: r.explainedVarianceRatio, refusal: folds(r.refusal), harmfulness: folds(r.harmfulness) }];
    }),
  ),
);
const refusalProbs = lpProb;
const summary = {
  model: path.basename(modelPath),
  params: { limitPerLabel: Number(values.limit), samples: Number(values.samples), maxNewTokens: maxTokens },
  seconds: (performance.now() - started) / 1000,
  nodeSeconds: Object.fromEntries(run.nodes.map((n) => [n.id, (n.durationMs ?? 0) / 1000])),
  refusal: rows,
  labelAgreement: logprobOnly
    ? null
    : {
        pearsonSampledComplianceVsLogprobCompliance: pearson(scCompliance, refusalProbs.map((p) => 1 - p)),
        spearman: pearson(rank(scCompliance), rank(refusalProbs.map((p) => 1 - p))),
      },
  directions,
};
writeFileSync(values.out!, JSON.stringify(summary, null, 2));
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
console.log(`\nSmolLM2 analysis chain: ${summary.seconds.toFixed(0)} s (${Object.entries(summary.nodeSeconds).map(([k, v]) => `${k} ${v.toFixed(0)}s`).join(', ')})`);
console.log('prompt    label     inputs  sample-refusal  any-refusal  mean-compliance  mean P(refusal opener)');
for (const r of rows)
  console.log(`${r.prompt.padEnd(9)} ${r.label.padEnd(9)} ${String(r.inputs).padStart(6)}  ${pct(r.sampleRefusalRate).padStart(14)}  ${pct(r.queriesWithAnyRefusal).padStart(11)}  ${r.meanSampledCompliance.toFixed(3).padStart(15)}  ${r.meanLogprobRefusal.toExponential(2).padStart(22)}`);
if (summary.labelAgreement)
  console.log(`label agreement (sampled vs logprob compliance): pearson ${summary.labelAgreement.pearsonSampledComplianceVsLogprobCompliance.toFixed(3)}, spearman ${summary.labelAgreement.spearman.toFixed(3)}`);
for (const [id, d] of Object.entries(directions) as [string, (typeof directions)[string]][]) {
  console.log(`${id}: PCA ratios ${d.explainedVarianceRatio.map((x: number) => x.toFixed(3)).join(' ')}; refusal acc ${pct(d.refusal.meanHeldOutAccuracy)} (BCE ${d.refusal.meanHeldOutBce.toFixed(3)}); harmfulness acc ${pct(d.harmfulness.meanHeldOutAccuracy)} (BCE ${d.harmfulness.meanHeldOutBce.toFixed(3)})`);
}
console.log(`summary written to ${values.out}`);
