/**
 * The DRO experiment on SmolLM2-135M-Instruct with a small CPU budget, end to end through the real stages
 * and the local runner: training queries → refusal labels (refusal-logprob, one forward pass each) →
 * hidden states → directions → DRO soft prompt; then held-out evaluation (sampling + judge, boundary
 * logits, capability proxy) of no prompt / basic prompt / DRO prompt, and the HTML report.
 *
 *   node bin/tsnode.mjs packages/dro/scripts/smollm2-quick.ts [--store DIR] [--train-per-label N]
 *     [--eval-per-label N] [--prompt ID] [--steps N]
 *
 * Prints the loss curve, the refusal-logit shift of the training queries (soft vs basic prompt) and the
 * evaluation table. This is a measurement script for the numbers in reports, not the product's `dro run`.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { columnValues, LocalArtifactStore } from '@dro/artifacts';
import { runDag, StageRegistry, type Dag, type DagNode } from '@dro/pipeline';
import { dataPrepStage, importPrompts, importQueries } from '@dro/data-prep';
import { refusalLogprobStage, samplingStage } from '@dro/sampling';
import { extractStage } from '@dro/extract';
import { directionsStage } from '@dro/directions';
import { droTrainStage, promptTuningStage, quickDroParams, quickPromptTuningParams } from '../src/index.ts';
import { evaluateStage, referenceAnswersStage, reportHtmlPath, reportStage } from '@dro/evaluate';
import { modelDigest } from '@dro/llm';

// Usage and options: see the header; --directions-lr and --lr are experiment knobs recorded in the report.

const { values: args } = parseArgs({
  options: {
    store: { type: 'string', default: path.join(os.tmpdir(), 'dro-smollm2-quick') },
    'train-per-label': { type: 'string', default: '32' },
    'eval-per-label': { type: 'string', default: '12' },
    prompt: { type: 'string', default: 'default' },
    steps: { type: 'string', default: '8' },
    samples: { type: 'string', default: '3' },
    micro: { type: 'string', default: String(quickDroParams.microBatchSize) },
    // The paper's boundary optimiser (AdamW lr 1e-4, stop when BCE improves < 1e-4 for 3 epochs) can stop
    // at its zero initialisation when the labels barely vary; a larger step lets the boundary fit.
    'directions-lr': { type: 'string' },
    lr: { type: 'string', default: String(quickDroParams.lr) },
    // Also train and evaluate the prompt-tuning baseline and these ablations (comma-separated variants).
    'prompt-tuning': { type: 'boolean', default: false },
    ablations: { type: 'string', default: '' },
    backend: { type: 'string' },
  },
});

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const modelPath = path.join(process.env.DRO_CACHE ?? path.join(os.homedir(), '.cache', 'dro'), 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf');
const store = new LocalArtifactStore({ root: args.store });
const model = { path: modelPath, digest: modelDigest([modelPath], modelPath) };
const promptId = args.prompt!;
const trainN = Number(args['train-per-label']);
const evalN = Number(args['eval-per-label']);

const trainQueries = await importQueries(store, path.join(repo, 'data/queries/train.jsonl'), { set: 'train' });
const evalQueries = await importQueries(store, path.join(repo, 'data/queries/heldout.jsonl'), { set: 'heldout' });
const prompts = await importPrompts(store, [path.join(repo, 'data/prompts', `${promptId}.txt`)]);

const samplingParams = { samples: Number(args.samples), minNewTokens: 4, maxNewTokens: { harmful: 40, harmless: 40 }, judge: 'project', judgeTopLongest: null };
const nodes: DagNode[] = [
  { id: 'prep:train', stage: 'data-prep', params: { limitPerLabel: trainN }, inputs: { queries: { ref: trainQueries }, prompts: { ref: prompts } }, model },
  { id: 'labels', stage: 'refusal-logprob', params: {}, inputs: { rendered: { node: 'prep:train', output: 'rendered' } }, model },
  { id: 'extract', stage: 'extract', params: {}, inputs: { rendered: { node: 'prep:train', output: 'rendered' } }, model },
  {
    id: 'directions',
    stage: 'directions',
    params: args['directions-lr'] ? { boundary: { learningRate: Number(args['directions-lr']) } } : {},
    inputs: { hiddenStates: { node: 'extract', output: 'hiddenStates' }, scores: { node: 'labels', output: 'scores' } },
  },
  {
    id: 'dro',
    stage: 'dro-train',
    params: { ...quickDroParams, promptId, maxQueries: null, batchSize: 16, epochs: Math.ceil((Number(args.steps) * 16) / (2 * trainN)), maxSteps: Number(args.steps), microBatchSize: Number(args.micro), lr: Number(args.lr) },
    inputs: { rendered: { node: 'prep:train', output: 'rendered' }, directions: { node: 'directions', output: 'directions' } },
    model,
  },
  // One eval rendering per prompt variant, so each condition samples only its own rows.
  ...['none', promptId].map((variant) => ({
    id: `prep:eval:${variant}`,
    stage: 'data-prep',
    params: { limitPerLabel: evalN, promptVariants: [variant] },
    inputs: { queries: { ref: evalQueries }, prompts: { ref: prompts } },
    model,
  })),
  { id: 'references', stage: 'reference-answers', params: { maxNewTokens: 24, maxQueries: evalN }, inputs: { rendered: { node: 'prep:eval:none', output: 'rendered' } }, model },
];
const droParams = (nodes.find((n) => n.id === 'dro')!.params ?? {}) as Record<string, unknown>;
const conditions: { name: string; promptId: string; softFrom: string | null }[] = [
  { name: 'none', promptId: 'none', softFrom: null },
  { name: `basic:${promptId}`, promptId, softFrom: null },
  { name: `dro:${promptId}`, promptId, softFrom: 'dro' },
];
for (const variant of args.ablations!.split(',').filter(Boolean)) {
  nodes.push({ id: `dro-${variant}`, stage: 'dro-train', params: { ...droParams, variant }, inputs: nodes.find((n) => n.id === 'dro')!.inputs, model });
  conditions.push({ name: `dro-${variant}:${promptId}`, promptId, softFrom: `dro-${variant}` });
}
if (args['prompt-tuning']) {
  // The baseline learns from the model's own judged responses to the training queries under the basic prompt.
  nodes.push({ id: 'prep:train:basic', stage: 'data-prep', params: { limitPerLabel: trainN, promptVariants: [promptId] }, inputs: { queries: { ref: trainQueries }, prompts: { ref: prompts } }, model });
  nodes.push({ id: 'sample:train', stage: 'sampling', params: { ...samplingParams, samples: 1 }, inputs: { rendered: { node: 'prep:train:basic', output: 'rendered' } }, model });
  nodes.push({
    id: 'pt',
    stage: 'prompt-tuning',
    params: { ...quickPromptTuningParams, promptId, batchSize: 16, epochs: Math.ceil((Number(args.steps) * 16) / (2 * trainN)), maxSteps: Number(args.steps), lr: Number(args.lr) },
    inputs: { rendered: { node: 'prep:train:basic', output: 'rendered' }, samples: { node: 'sample:train', output: 'samples' } },
    model,
  });
  conditions.push({ name: `prompt-tuning:${promptId}`, promptId, softFrom: 'pt' });
}
const reportInputs: DagNode['inputs'] = {
  'directions:smollm2': { node: 'directions', output: 'directions' },
  [`curve:dro:${promptId}`]: { node: 'dro', output: 'curve' },
  [`shift:dro:${promptId}`]: { node: 'dro', output: 'shift' },
  [`nearestTokens:dro:${promptId}`]: { node: 'dro', output: 'nearestTokens' },
};
for (const c of conditions) {
  const soft: DagNode['inputs'] = c.softFrom ? { [`softPrompt:${c.softFrom}`]: { node: c.softFrom, output: 'softPrompt' } } : {};
  if (c.softFrom && c.softFrom !== 'dro') reportInputs[`curve:${c.name}`] = { node: c.softFrom, output: 'curve' };
  nodes.push({
    id: `sample:${c.name}`,
    stage: 'sampling',
    params: { ...samplingParams, sets: [] },
    inputs: { rendered: { node: `prep:eval:${c.promptId}`, output: 'rendered' }, ...soft },
    model,
  });
  nodes.push({
    id: `eval:${c.name}`,
    stage: 'evaluate',
    params: { model: 'smollm2', condition: c.name, promptId: c.promptId },
    inputs: {
      rendered: { node: `prep:eval:${c.promptId}`, output: 'rendered' },
      directions: { node: 'directions', output: 'directions' },
      samples: { node: `sample:${c.name}`, output: 'samples' },
      'references:heldout': { node: 'references', output: 'references' },
      ...soft,
    },
    model,
  });
  reportInputs[`metrics:${c.name}`] = { node: `eval:${c.name}`, output: 'metrics' };
  reportInputs[`points:${c.name}`] = { node: `eval:${c.name}`, output: 'points' };
  reportInputs[`samples:${c.name}`] = { node: `sample:${c.name}`, output: 'samples' };
}
nodes.push({ id: 'report', stage: 'report', params: { title: 'DRO on SmolLM2-135M-Instruct (quick)' }, inputs: reportInputs });

const dag: Dag = { name: 'smollm2-quick', nodes };
const stages = new StageRegistry([
  dataPrepStage, refusalLogprobStage, samplingStage, extractStage, directionsStage, droTrainStage, promptTuningStage, referenceAnswersStage, evaluateStage, reportStage,
]);
const started = performance.now();
const record = await runDag(dag, { store, stages, concurrency: 1 });
const seconds = (performance.now() - started) / 1000;
console.log(`\nrun ${record.status} in ${seconds.toFixed(0)} s`);
for (const n of record.nodes) console.log(`  ${n.id.padEnd(24)} ${n.cacheHit ? 'cached' : `${((n.durationMs ?? 0) / 1000).toFixed(1)} s`}`);
if (record.status !== 'succeeded') process.exit(1);
const out = (id: string, name: string) => record.nodes.find((n) => n.id === id)!.outputs[name]!;

const curve = await store.getTable(out('dro', 'curve'));
const steps = columnValues<number>(curve, 'step', 'curve');
const terms = columnValues<string>(curve, 'term', 'curve');
const vals = columnValues<number>(curve, 'value', 'curve');
console.log('\nloss curve (step: total | refusal | harmfulness | norm | grad_norm)');
for (const s of [...new Set(steps)]) {
  const v = (t: string) => vals[steps.findIndex((x, i) => x === s && terms[i] === t)]!;
  console.log(`  ${String(s).padStart(3)}: ${v('total').toFixed(4)} | ${v('refusal').toFixed(4)} | ${v('harmfulness').toFixed(4)} | ${v('norm').toFixed(4)} | ${v('grad_norm').toFixed(3)}`);
}
const shift = await store.getTable(out('dro', 'shift'));
const labels = columnValues<string>(shift, 'label', 'shift');
const base = columnValues<number>(shift, 'base_refusal_logit', 'shift');
const soft = columnValues<number>(shift, 'soft_refusal_logit', 'shift');
console.log('\nrefusal logit r(h) on training queries (basic text prompt → DRO soft prompt)');
for (const l of ['harmful', 'harmless']) {
  const idx = labels.map((x, i) => (x === l ? i : -1)).filter((i) => i >= 0);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`  ${l.padEnd(9)} n=${idx.length}  basic ${mean(idx.map((i) => base[i]!)).toFixed(3)}  soft ${mean(idx.map((i) => soft[i]!)).toFixed(3)}  shift ${mean(idx.map((i) => soft[i]! - base[i]!)).toFixed(3)}  moved toward refusal ${idx.filter((i) => soft[i]! < base[i]!).length}/${idx.length}`);
}
console.log('\nevaluation (held-out)');
console.log('  condition            label     queries  complied(any)  mean compliance  refused(any)  mean r(h)  capability');
for (const c of conditions) {
  const m = await store.getTable(out(`eval:${c.name}`, 'metrics'));
  const col = <T>(name: string) => columnValues<T>(m, name, 'metrics');
  col<string>('label').forEach((label, i) => {
    const q = col<number>('queries')[i]!;
    console.log(
      `  ${c.name.padEnd(20)} ${label.padEnd(9)} ${String(q).padStart(7)}  ${String(col<number>('queries_any_complied')[i]).padStart(6)}/${q}      ${col<number>('mean_compliance')[i]!.toFixed(3)}            ${String(col<number>('queries_any_refused')[i]).padStart(4)}/${q}     ${col<number | null>('mean_refusal_logit')[i]?.toFixed(3)}    ${col<number | null>('capability')[i]?.toFixed(3) ?? '–'}`,
    );
  });
}
console.log(`\nreport: ${await reportHtmlPath(store, out('report', 'report'))}`);
