/**
 * Measures DRO's training objective and its held-out effect for several step sizes, on real models, through
 * the real stages (the experiment DAG up to dro-train, cached in one store). Prints one table row per
 * (model, lr, lrUnit, epochs):
 *   - the training objective on the training queries (share of harmful moved toward refusal and harmless
 *     toward compliance, mean refusal-logit shifts), as dro-train records it;
 *   - the held-out shift of the refusal logit r(h) under the trained prompt vs the basic text prompt, on
 *     every held-out query (no sampling: one forward pass per query and condition), mean and 95 % interval.
 *
 *   node bin/tsnode.mjs tools/measure/dro-step-size.ts --model ID=PATH [--model ID=PATH …]
 *     [--lr 0.05,0.1] [--lr-unit prompt-rms|absolute] [--epochs 2,4] [--store DIR] [--json]
 *
 * This is how the quick preset's step-size rule was chosen (README, "Choosing the quick preset"); it is a
 * measurement script, not part of `dro run`.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readRenderedInputs, readSoftPrompt, readTrainingShift, trainingObjective, type ArtifactRef } from '@dro/artifacts';
import { lastHiddenStates, project, promptedInput } from '@dro/evaluate';
import { defaultConfig, mergeParams, prepareExperiment, runExperimentLocally, dagFor, type ExperimentConfig } from '@dro/experiment';
import { loadModel, tf } from '@dro/llm';
import { readDirections } from '@dro/artifacts';
import { meanInterval } from '@dro/evaluate';
import { createProgressReporter } from '@dro/pipeline';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', multiple: true },
    lr: { type: 'string', default: '0.05' },
    'lr-unit': { type: 'string', default: 'prompt-rms' },
    epochs: { type: 'string', default: '2' },
    store: { type: 'string', default: path.join(os.tmpdir(), 'dro-step-size') },
    json: { type: 'boolean', default: false },
  },
});

const models = (args.model ?? []).map((m) => {
  const [id, file] = m.split('=');
  if (!id || !file) throw new Error(`--model expects ID=PATH, got "${m}"`);
  return { id, path: file };
});
if (models.length === 0) throw new Error('give at least one --model ID=PATH');
const lrs = args.lr!.split(',').map(Number);
const epochsList = args.epochs!.split(',').map(Number);

interface Row {
  model: string;
  lr: number;
  lrUnit: string;
  effectiveLr: number;
  epochs: number;
  steps: number;
  objectiveMet: boolean;
  harmfulMoved: string;
  harmfulShift: number;
  harmlessMoved: string;
  harmlessShift: number;
  heldoutHarmful: { mean: number; low: number; high: number; n: number };
  heldoutHarmless: { mean: number; low: number; high: number; n: number };
  seconds: number;
}

async function heldOutShift(config: ExperimentConfig, modelId: string, outputs: (id: string) => Record<string, ArtifactRef> | undefined) {
  const prepared = await prepareExperiment(config);
  const basic = config.basicPrompt;
  const rendered = outputs(`prep-eval-${basic}@${modelId}`)!.rendered!;
  const rows = await readRenderedInputs(prepared.store, rendered, { promptId: basic });
  const directions = await readDirections(prepared.store, outputs(`directions@${modelId}`)!.directions!);
  const soft = await readSoftPrompt(prepared.store, outputs(`dro:${basic}@${modelId}`)!.softPrompt!, 'softPrompt');
  const model = await loadModel(config.models.find((m) => m.id === modelId)!.path);
  const softTensor = tf.tensor2d(soft.values, [soft.n, soft.d]);
  try {
    const inputs = rows.map((r) => promptedInput(r, true));
    const base = await lastHiddenStates(model, rows.map((r) => promptedInput(r, false)), null, 8);
    const trained = await lastHiddenStates(model, inputs, softTensor, 8);
    const d = directions.d;
    const shift = rows.map((_, i) => project(directions, trained, i * d).refusal - project(directions, base, i * d).refusal);
    const of = (label: string) => meanInterval(shift.filter((_, i) => rows[i]!.label === label));
    return { harmful: of('harmful'), harmless: of('harmless') };
  } finally {
    softTensor.dispose();
    model.dispose();
  }
}

const results: Row[] = [];
for (const m of models) {
  for (const lr of lrs) {
    for (const epochs of epochsList) {
      const base = defaultConfig();
      const config: ExperimentConfig = {
        ...base,
        name: `step-size-${m.id}`,
        models: [m],
        store: args.store,
        overrides: {
          'dro-train': mergeParams({}, { lr, lrUnit: args['lr-unit'], epochs }),
          // Every held-out query, so the held-out shift has its full sample.
          'data-prep:eval': { limitPerLabel: null },
        },
      };
      const prepared = await prepareExperiment(config);
      const started = performance.now();
      const targets = [`dro:${config.basicPrompt}@${m.id}`, `prep-eval-${config.basicPrompt}@${m.id}`];
      const nodes = new Map<string, Record<string, ArtifactRef> | undefined>();
      for (const target of targets) {
        const r = await runExperimentLocally({ ...prepared, dag: dagFor(prepared.dag, target) }, { progress: createProgressReporter({ mode: 'silent' }) });
        if (r.record.status !== 'succeeded') throw new Error(`${target}: ${r.record.status}`);
        for (const n of r.record.nodes) nodes.set(n.id, n.outputs);
      }
      const seconds = (performance.now() - started) / 1000;
      const shiftRows = await readTrainingShift(prepared.store, nodes.get(`dro:${config.basicPrompt}@${m.id}`)!.shift!);
      const objective = trainingObjective(shiftRows);
      const manifest = await prepared.store.manifest(nodes.get(`dro:${config.basicPrompt}@${m.id}`)!.softPrompt!.digest);
      const held = await heldOutShift(config, m.id, (id) => nodes.get(id));
      const batch = 16;
      const row: Row = {
        model: m.id, lr, lrUnit: args['lr-unit']!, effectiveLr: Number((manifest.summary as { effectiveLr?: number } | undefined)?.effectiveLr ?? NaN),
        epochs, steps: Math.ceil(shiftRows.length / batch) * epochs,
        objectiveMet: objective.met,
        harmfulMoved: `${objective.harmful.movedAsIntended}/${objective.harmful.queries}`, harmfulShift: objective.harmful.meanShift,
        harmlessMoved: `${objective.harmless.movedAsIntended}/${objective.harmless.queries}`, harmlessShift: objective.harmless.meanShift,
        heldoutHarmful: held.harmful, heldoutHarmless: held.harmless, seconds,
      };
      results.push(row);
      const ci = (x: Row['heldoutHarmful']) => `${x.mean.toFixed(3)} [${x.low.toFixed(3)}, ${x.high.toFixed(3)}] n=${x.n}`;
      process.stdout.write(
        `${row.model}\tlr ${lr} (${row.lrUnit}, eff ${row.effectiveLr.toExponential(2)})\tepochs ${epochs}\tobjective ${row.objectiveMet ? 'met' : 'NOT met'}\t` +
          `train harmful→refusal ${row.harmfulMoved} (Δr ${row.harmfulShift.toFixed(3)})\tharmless→compliance ${row.harmlessMoved} (Δr ${row.harmlessShift.toFixed(3)})\t` +
          `held-out Δr harmful ${ci(row.heldoutHarmful)}\tharmless ${ci(row.heldoutHarmless)}\t${seconds.toFixed(0)} s\n`,
      );
    }
  }
}
if (args.json) process.stdout.write(`${JSON.stringify(results)}\n`);
