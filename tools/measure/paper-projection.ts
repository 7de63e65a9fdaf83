/**
 * The paper preset's work, and how long it would take on 1, 8 and 64 workers: the README's projection.
 *
 *   node bin/tsnode.mjs tools/measure/paper-projection.ts [--model PATH]
 *
 * Builds the default config's DAG under `--preset paper` (labels from sampling, every prompt trained and
 * evaluated), runs only its data-prep nodes (tokenizer only, seconds) to count rows and prompt tokens, then
 * per model node: tokens sampled (an upper bound: every sample runs to its maxNewTokens) and tokens
 * forwarded (prompts, teacher-forced answers, training passes), from the nodes' own parsed params.
 *
 * Rates are the README's measured ones (Performance: SmolLM2-135M, native TensorFlow, the 2-core
 * reference machine, one worker per machine): decode 137 tok/s at batch 8, prefill 864 tok/s, forward +
 * backward 411 tok/s — the low ends of the measured ranges. Qwen2.5-Coder-0.5B (the default model, 630 M
 * parameters) is projected at those rates × 135/630 (matmul-bound), an estimate until `npm run
 * bench:scale` measures it. A sharded node on W workers takes ⌈shards/W⌉/shards of its 1-worker time;
 * nodes run one after another (DAG width would only shorten it), and a model load per shard is ignored.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { droStageRegistry, prepareExperiment, resolveConfig } from '@dro/experiment';
import { createProgressReporter, runDag, shardRows, validateDag, type DagNode } from '@dro/pipeline';

const { values: flags } = parseArgs({ options: { model: { type: 'string' } } });
const RATES = { decode: 137, prefill: 864, fwdBwd: 411 }; // tok/s, SmolLM2-135M, README Performance
const QWEN_SCALE = 135 / 630;
const WORKERS = [1, 8, 64];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-paper-projection-'));
try {
  const base = resolveConfig(undefined, 'paper');
  const config = flags.model ? { ...base, models: [{ id: base.models[0]!.id, path: flags.model }] } : base;
  const prepared = await prepareExperiment(config, path.join(dir, 'store'));
  const stages = droStageRegistry();
  const plan = validateDag(prepared.dag, stages);
  const prepIds = prepared.dag.nodes.filter((n) => n.stage === 'data-prep').map((n) => n.id);
  const prep = await runDag({ name: 'prep', nodes: prepared.dag.nodes.filter((n) => prepIds.includes(n.id)) }, { store: prepared.store, stages, progress: createProgressReporter({ mode: 'silent' }) });
  const lengths = new Map<string, { label: string; promptId: string; tokens: number }[]>();
  for (const n of prep.nodes) {
    const table = await prepared.store.getTable(n.outputs.rendered!);
    const tokens = table.getChild('token_ids')!;
    lengths.set(n.id, Array.from({ length: table.numRows }, (_, i) => ({ label: String(table.getChild('label')!.get(i)), promptId: String(table.getChild('prompt_id')!.get(i)), tokens: (tokens.get(i) as { length: number }).length })));
  }
  const renderedOf = (node: DagNode) => {
    const source = node.inputs.rendered;
    return source && 'node' in source ? lengths.get(source.node)! : [];
  };
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

  const rows: { node: string; rows: number; shards: number; sampled: number; forwarded: number; trained: number }[] = [];
  for (const node of prepared.dag.nodes) {
    const params = plan.paramsOf.get(node.id) as Record<string, never>;
    const all = renderedOf(node);
    let picked = all;
    let sampled = 0;
    let forwarded = 0;
    let trained = 0;
    switch (node.stage) {
      case 'sampling': {
        const p = params as unknown as { samples: number; maxNewTokens: { harmful: number; harmless: number } };
        sampled = sum(all.map((r) => p.samples * p.maxNewTokens[r.label as 'harmful']));
        forwarded = sum(all.map((r) => r.tokens));
        break;
      }
      case 'extract':
      case 'refusal-logprob':
        forwarded = sum(all.map((r) => r.tokens));
        break;
      case 'reference-answers': {
        const p = params as unknown as { maxNewTokens: number; promptId: string };
        picked = all.filter((r) => r.label === 'harmless' && r.promptId === p.promptId);
        sampled = picked.length * p.maxNewTokens;
        forwarded = sum(picked.map((r) => r.tokens));
        break;
      }
      case 'eval-forward': {
        const p = params as unknown as { promptId: string };
        picked = all.filter((r) => r.promptId === p.promptId);
        // Hidden states of every query, plus the teacher-forced reference answers of the harmless ones (≤ 128 tokens each).
        forwarded = sum(picked.map((r) => r.tokens)) + sum(picked.filter((r) => r.label === 'harmless').map((r) => r.tokens + 128));
        break;
      }
      case 'dro-train':
      case 'prompt-tuning': {
        const p = params as unknown as { epochs: number; promptId: string };
        picked = all.filter((r) => r.promptId === p.promptId);
        trained = p.epochs * sum(picked.map((r) => r.tokens));
        break;
      }
      default:
        continue;
    }
    const rowParallel = stages.get(node.stage)?.rowParallel as { chunkRows(p: unknown): number } | undefined;
    const perShard = rowParallel && node.shardSize !== undefined ? shardRows(node.shardSize, rowParallel.chunkRows(params)) : Infinity;
    const shards = picked.length > perShard ? Math.ceil(picked.length / perShard) : 1;
    rows.push({ node: node.id, rows: picked.length, shards, sampled, forwarded, trained });
  }

  const hours = (seconds: number) => (seconds / 3600).toFixed(seconds < 360 ? 2 : 1);
  const oneWorkerSeconds = (r: (typeof rows)[number], scale: number) => (r.sampled / RATES.decode + r.forwarded / RATES.prefill + r.trained / RATES.fwdBwd) / scale;
  const onWorkers = (r: (typeof rows)[number], workers: number, scale: number) => (oneWorkerSeconds(r, scale) * Math.ceil(r.shards / workers)) / r.shards;
  console.log(`| node | rows | shards | tokens sampled (≤) | tokens forwarded | training tokens (fwd+bwd) | ${WORKERS.map((w) => `Qwen h, ${w} worker${w > 1 ? 's' : ''}`).join(' | ')} |`);
  console.log(`| --- | ---: | ---: | ---: | ---: | ---: | ${WORKERS.map(() => '---:').join(' | ')} |`);
  for (const r of rows) {
    console.log(`| ${r.node} | ${r.rows} | ${r.shards} | ${r.sampled.toLocaleString('en')} | ${r.forwarded.toLocaleString('en')} | ${r.trained.toLocaleString('en')} | ${WORKERS.map((w) => hours(onWorkers(r, w, QWEN_SCALE))).join(' | ')} |`);
  }
  const total = (w: number, scale: number) => sum(rows.map((r) => onWorkers(r, w, scale)));
  console.log(`| **total** | | | ${sum(rows.map((r) => r.sampled)).toLocaleString('en')} | ${sum(rows.map((r) => r.forwarded)).toLocaleString('en')} | ${sum(rows.map((r) => r.trained)).toLocaleString('en')} | ${WORKERS.map((w) => `**${hours(total(w, QWEN_SCALE))}**`).join(' | ')} |`);
  console.log(`\nSmolLM2-135M at the measured rates: ${WORKERS.map((w) => `${hours(total(w, 1))} h on ${w}`).join(', ')}.`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
