/**
 * Every node's output digests of the tiny-model experiment (packages/experiment/test/tiny-experiment.ts:
 * the quick preset's DAG with sampled labels, DRO, an ablation and the prompt-tuning baseline), run from
 * an empty store. A refactor that must not change what the pipeline computes is checked with it: record the
 * digests before, run again after, compare.
 *
 *   node bin/tsnode.mjs tools/measure/tiny-dag-digests.ts > before.json   # … change …
 *   node bin/tsnode.mjs tools/measure/tiny-dag-digests.ts --compare before.json
 *
 * Each node's cache key is listed too (as "cacheKey"): while it is unchanged, stores made before the change
 * keep serving their cached outputs.
 *
 * Digests are of the artifacts' bytes, which depend on the tfjs backend (float rounding): compare runs on
 * the same backend ($DRO_TFJS_BACKEND).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { prepareExperiment, runExperimentLocally } from '@dro/experiment';
import { createProgressReporter } from '@dro/pipeline';
import { tinyConfig } from '../../packages/experiment/test/tiny-experiment.ts';

const { values: args } = parseArgs({ options: { compare: { type: 'string' } } });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-tiny-digests-'));
try {
  const outcome = await runExperimentLocally(await prepareExperiment(tinyConfig(dir)), { concurrency: 1, progress: createProgressReporter({ mode: 'silent' }) });
  if (outcome.record.status !== 'succeeded') {
    const failed = outcome.record.nodes.filter((n) => n.status !== 'succeeded').map((n) => `${n.id}: ${n.error?.message}`);
    throw new Error(`the tiny DAG did not succeed:\n${failed.join('\n')}`);
  }
  const digests: Record<string, Record<string, string>> = Object.fromEntries(
    [...outcome.record.nodes]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((n) => [n.id, { cacheKey: n.cacheKey ?? '', ...Object.fromEntries(Object.entries(n.outputs ?? {}).sort().map(([name, ref]) => [name, ref.digest])) }]),
  );
  if (args.compare === undefined) {
    process.stdout.write(JSON.stringify(digests, null, 1) + '\n');
  } else {
    const before = JSON.parse(fs.readFileSync(args.compare, 'utf8')) as Record<string, Record<string, string>>;
    const changes: string[] = [];
    for (const id of new Set([...Object.keys(before), ...Object.keys(digests)])) {
      for (const name of new Set([...Object.keys(before[id] ?? {}), ...Object.keys(digests[id] ?? {})])) {
        const [a, b] = [before[id]?.[name], digests[id]?.[name]];
        if (a !== b) changes.push(`${id} ${name}: ${a ?? '(none)'} → ${b ?? '(none)'}`);
      }
    }
    const outputs = Object.values(digests).reduce((n, o) => n + Object.keys(o).length - 1, 0);
    console.log(changes.length === 0 ? `unchanged: ${outputs} output digests and the cache keys of ${Object.keys(digests).length} nodes` : `CHANGED:\n${changes.join('\n')}`);
    process.exitCode = changes.length === 0 ? 0 : 1;
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
