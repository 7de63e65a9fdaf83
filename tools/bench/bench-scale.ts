/**
 * `npm run bench:scale [-- --model PATH|tiny] [-- --small] [-- --workers N] [-- --concurrency N] [-- --json]`
 *
 * What sharding buys on Temporal: the quick preset's DAG run twice against a local Temporal dev server,
 * once with 1 model worker and once with N (default 2), each worker a `dro worker --queues model` process
 * pinned to its own core (`taskset -c i`) with one TensorFlow intra-op and inter-op thread (and one OpenMP
 * thread), sharing one store; a cpu worker (unpinned) serves the cpu queue. Each configuration starts
 * from an empty store. The DAG runs `--concurrency` nodes at once (default 1: one node at a time, so a
 * node's time is its own and the speed-up is what its shards spreading over the workers buys, not DAG
 * width). Printed: every node's wall time (workflow clock, scheduling to completion) in both
 * configurations, the sum over the sharded nodes and over the whole run, and their ratios; with --json the
 * last line is one object with `speedup_sharded_stages` and `speedup_end_to_end`.
 *
 * --model: a GGUF/HF model path (default: the default config's model, Qwen2.5-Coder-0.5B-Instruct), or
 * "tiny" for a random tiny model (smoke test of the machinery; its times mean nothing). --small: a few
 * queries, short samples and training, and shards of 12 rows (chunks of 4), so the whole bench finishes in
 * minutes; the quick preset's own sizes otherwise. Needs `taskset` (util-linux) and at least N cores.
 * Never run it as a test: it measures wall time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultConfig, prepareExperiment, validateConfig, type ExperimentConfig } from '@dro/experiment';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { connectClient, runDagOnTemporal, startTemporalServer } from '@dro/workflows';
import type { NodeStatus } from '@dro/workflows/shared';

const { values: flags } = parseArgs({
  options: {
    model: { type: 'string' },
    small: { type: 'boolean' },
    workers: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '1' },
    json: { type: 'boolean' },
  },
});
const workers = Number(flags.workers);
const concurrency = Number(flags.concurrency);
for (const [name, value] of [['--workers', workers], ['--concurrency', concurrency]] as const) {
  if (!Number.isInteger(value) || value < 1) {
    console.error(`bench:scale: ${name} expects a whole number ≥ 1, got ${JSON.stringify(flags[name.slice(2) as 'workers'])}`);
    process.exit(2);
  }
}
if (workers > os.availableParallelism()) console.error(`bench:scale: warning: ${workers} workers pinned to one core each, but this machine has ${os.availableParallelism()} cores`);
if (spawnSync('taskset', ['--version']).status !== 0) {
  console.error('bench:scale: needs taskset (util-linux) to pin each worker to one core');
  process.exit(2);
}

const repo = path.resolve(import.meta.dirname, '..', '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-bench-scale-'));
const log = (line: string) => process.stderr.write(`bench:scale: ${line}\n`);

/** The quick preset on the chosen model; --small shrinks the work (and the shards with it). */
function benchConfig(storeRoot: string): ExperimentConfig {
  const base = defaultConfig();
  const modelPath = flags.model === 'tiny' ? writeTinyGgufModel(path.join(scratch, 'tiny.gguf'), 'F32') : flags.model ?? base.models[0]!.path;
  const small = flags.small
    ? {
        shardSize: 12,
        overrides: {
          'data-prep:train': { limitPerLabel: 3 },
          'data-prep:eval': { limitPerLabel: 3 },
          'refusal-logprob': { chunkSize: 4 },
          extract: { chunkSize: 4 },
          sampling: { samples: 2, minNewTokens: 1, maxNewTokens: { harmful: 8, harmless: 8 }, chunkSize: 4 },
          'dro-train': { epochs: 1 },
          'reference-answers': { maxNewTokens: 4, maxQueries: 3 },
          evaluate: { capabilityQueries: 3 },
        },
      }
    : {};
  return validateConfig({ ...base, name: 'bench-scale', models: [{ id: 'bench', path: modelPath }], store: storeRoot, ...small }, path.join(scratch, 'config.json'), scratch);
}

/** `dro worker` in a child process; resolves once it serves its queues. */
async function startDroWorker(args: string[], env: Record<string, string> = {}, core?: number): Promise<ChildProcess> {
  const command = [process.execPath, path.join(repo, 'bin', 'dro.mjs'), 'worker', ...args, '--log-level', 'WARN'];
  const child = core === undefined ? spawn(command[0]!, command.slice(1), { env: { ...process.env, ...env } }) : spawn('taskset', ['-c', String(core), ...command], { env: { ...process.env, ...env } });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('dro worker: serving')) resolve();
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => reject(new Error(`dro worker exited (${code}) before serving:\n${output}`)));
  });
  return child;
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

interface Measured {
  wallMs: number;
  nodes: Array<{ id: string; stage: string; ms: number; shards: number | null }>;
  activities: ActivityTime[];
}

/** One activity of the run, from its workflow history: queued = scheduled → started, ran = started → closed. */
interface ActivityTime {
  id: string;
  worker: string;
  queuedMs: number;
  ranMs: number;
}

/**
 * Every activity's queue wait and run time, from the run's history (the server writes one started event per
 * activity, of its last attempt). This is where a sharded node's time goes: its plan and merge (cpu queue)
 * and each shard on the worker that ran it.
 */
async function activityTimes(address: string, runId: string): Promise<ActivityTime[]> {
  const client = await connectClient({ address });
  try {
    const history = await client.workflow.getHandle(runId).fetchHistory();
    const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
    const scheduled = new Map<string, { id: string; at: number }>();
    const started = new Map<string, { worker: string; at: number }>();
    const times: ActivityTime[] = [];
    for (const event of history.events ?? []) {
      const at = ms(event.eventTime);
      const s = event.activityTaskScheduledEventAttributes;
      if (s?.activityId) scheduled.set(String(event.eventId), { id: s.activityId, at });
      const st = event.activityTaskStartedEventAttributes;
      if (st) started.set(String(st.scheduledEventId), { worker: st.identity ?? '?', at });
      const done = event.activityTaskCompletedEventAttributes;
      if (done) {
        const sched = scheduled.get(String(done.scheduledEventId));
        const start = started.get(String(done.scheduledEventId));
        if (sched && start) times.push({ id: sched.id, worker: start.worker, queuedMs: start.at - sched.at, ranMs: at - start.at });
      }
    }
    return times;
  } finally {
    await client.connection.close();
  }
}

async function measure(address: string, modelWorkers: number): Promise<Measured> {
  const storeRoot = path.join(scratch, `store-${modelWorkers}`);
  const prepared = await prepareExperiment(benchConfig(storeRoot), storeRoot);
  const children: ChildProcess[] = [];
  try {
    children.push(await startDroWorker(['--queues', 'cpu', '--address', address, '--store', storeRoot]));
    // One core and one TensorFlow/OpenMP thread per model worker: N workers use N cores, no more.
    const oneThread = { TF_NUM_INTRAOP_THREADS: '1', TF_NUM_INTEROP_THREADS: '1', OMP_NUM_THREADS: '1' };
    for (let i = 0; i < modelWorkers; i++) children.push(await startDroWorker(['--queues', 'model', '--address', address, '--store', storeRoot], oneThread, i % os.availableParallelism()));
    log(`${modelWorkers} model worker(s) ready; running DAG "${prepared.dag.name}" (${prepared.dag.nodes.length} nodes)`);
    const started = performance.now();
    const runId = `bench-scale-${modelWorkers}-${Date.now()}`;
    const result = await runDagOnTemporal({ dag: prepared.dag, address, storeRoot, concurrency, runId });
    const wallMs = performance.now() - started;
    const nodes = result.nodes.map((n: NodeStatus) => ({
      id: n.id,
      stage: n.stage,
      ms: n.startedAt && n.finishedAt ? Date.parse(n.finishedAt) - Date.parse(n.startedAt) : 0,
      shards: n.shards?.total ?? null,
    }));
    return { wallMs, nodes, activities: await activityTimes(address, runId) };
  } finally {
    for (const child of children.reverse()) await stopWorker(child);
  }
}

const server = await startTemporalServer();
let one: Measured;
let many: Measured;
try {
  one = await measure(server.address, 1);
  many = await measure(server.address, workers);
} finally {
  await server.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);
const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
const rows = one.nodes.map((n) => {
  const other = many.nodes.find((m) => m.id === n.id)!;
  return [n.id, n.stage, n.shards === null ? '-' : String(n.shards), seconds(n.ms), seconds(other.ms), ratio(n.ms, other.ms).toFixed(2)];
});
const sharded = one.nodes.filter((n) => n.shards !== null).map((n) => n.id);
const sum = (m: Measured, ids: string[]) => m.nodes.filter((n) => ids.includes(n.id)).reduce((s, n) => s + n.ms, 0);
const shardedOne = sum(one, sharded);
const shardedMany = sum(many, sharded);
rows.push(['sharded nodes', `${sharded.length} nodes`, '', seconds(shardedOne), seconds(shardedMany), ratio(shardedOne, shardedMany).toFixed(2)]);
rows.push(['end to end', 'whole run', '', seconds(one.wallMs), seconds(many.wallMs), ratio(one.wallMs, many.wallMs).toFixed(2)]);
const table = (header: string[], body: string[][]) => {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...body.map(line)].join('\n');
};
console.log(`model ${flags.model ?? 'default'}${flags.small ? ' (small)' : ''}; ${workers} vs 1 model worker(s), each on one core with one thread; DAG concurrency ${concurrency}`);
console.log(table(['NODE', 'STAGE', 'SHARDS', '1 WORKER s', `${workers} WORKERS s`, 'SPEED-UP'], rows));

/**
 * Where each sharded node's time went, per configuration: its plan and merge activities (cpu queue), and
 * per model worker its summed shard time and each shard it ran (shard number: run time). "first pickup" is
 * how long the first shard waited in the queue for a worker; "other" is the node's time not covered by
 * plan, the busiest worker's shards and merge (queue waits and the workflow's own round trips).
 */
const breakdown = (m: Measured, label: string) =>
  sharded.map((id) => {
    const mine = m.activities.filter((a) => a.id === id || a.id.startsWith(`${id}#`));
    const step = (name: string) => mine.find((a) => a.id === `${id}#${name}`)?.ranMs ?? 0;
    const shards = mine.filter((a) => /#\d+\/\d+$/.test(a.id));
    const perWorker = new Map<string, { shards: string[]; ms: number }>();
    for (const a of shards) {
      const w = perWorker.get(a.worker) ?? { shards: [], ms: 0 };
      perWorker.set(a.worker, { shards: [...w.shards, `${a.id.split('#')[1]!.split('/')[0]}:${seconds(a.ranMs)}`], ms: w.ms + a.ranMs });
    }
    const busiest = Math.max(0, ...[...perWorker.values()].map((w) => w.ms));
    const total = m.nodes.find((n) => n.id === id)!.ms;
    const workersCell = [...perWorker.values()].map((w) => `${seconds(w.ms)} (${w.shards.join(' ')})`).join(' | ');
    const other = total - step('plan') - busiest - step('merge');
    const firstWait = Math.min(...shards.map((a) => a.queuedMs));
    return [id, label, seconds(total), seconds(step('plan')), workersCell, seconds(firstWait), seconds(step('merge')), seconds(other)];
  });
console.log('\nsharded nodes, where the time went (s; per model worker: its summed shard time (shard:time …))');
console.log(table(['NODE', 'WORKERS', 'NODE s', 'PLAN s', 'SHARDS ON EACH WORKER', 'FIRST PICKUP s', 'MERGE s', 'OTHER s'], [...breakdown(one, '1'), ...breakdown(many, String(workers))]));
if (flags.json) {
  console.log(
    JSON.stringify({
      model: flags.model ?? 'default',
      small: flags.small ?? false,
      workers,
      concurrency,
      sharded_nodes: sharded,
      sharded_stages_s: { one: shardedOne / 1000, many: shardedMany / 1000 },
      end_to_end_s: { one: one.wallMs / 1000, many: many.wallMs / 1000 },
      speedup_sharded_stages: ratio(shardedOne, shardedMany),
      speedup_end_to_end: ratio(one.wallMs, many.wallMs),
    }),
  );
}
