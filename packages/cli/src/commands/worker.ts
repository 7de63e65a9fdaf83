/**
 * `dro worker`: a Temporal worker process serving the DRO stages on the chosen task queues (dro-cpu,
 * dro-model) plus the workflow queue. Run one per machine (GPU machines: --queues model --backend tensorflow).
 * SIGTERM/SIGINT drain: polling stops, running stages get the grace time to finish.
 */
import { BadInputError, openStore } from '@dro/artifacts';
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE, type QueueName } from '@dro/workflows/shared';
import { CliError, nonNegativeOpt, positiveIntOpt, storeOpt, stringOpt, type Command } from '../command.ts';

const QUEUE_NAMES: readonly QueueName[] = ['cpu', 'model'];

export function parseQueues(raw: string): QueueName[] {
  const queues = raw.split(',').map((q) => q.trim()).filter((q) => q !== '');
  if (queues.length === 0) throw new CliError('--queues expects a comma list of cpu, model', 2);
  for (const q of queues) {
    if (!QUEUE_NAMES.includes(q as QueueName)) throw new CliError(`--queues: unknown queue "${q}" (expected cpu, model)`, 2);
  }
  return [...new Set(queues)] as QueueName[];
}

export const workerCommand: Command = {
  path: ['worker'],
  summary: 'Run a Temporal worker for DRO stages (task queues dro-cpu / dro-model); SIGTERM drains',
  usage: '--queues cpu,model [--allow-plugins DIR|PACKAGE[,…]] [--backend wasm|cpu|tensorflow|tensorflow-gpu] [--address HOST:PORT] [--namespace NS] [--store DIR|s3://BUCKET/PREFIX] [--grace SECONDS] [--cpu-slots N] [--model-slots N] [--log-level TRACE|DEBUG|INFO|WARN|ERROR]',
  options: {
    queues: { type: 'string', default: 'cpu,model' },
    // No default shown: it is $DRO_WORKER_PLUGINS, else none.
    'allow-plugins': { type: 'string' },
    backend: { type: 'string' },
    address: { type: 'string', default: process.env.TEMPORAL_ADDRESS ?? DEFAULT_ADDRESS },
    namespace: { type: 'string', default: process.env.TEMPORAL_NAMESPACE ?? DEFAULT_NAMESPACE },
    store: { type: 'string' },
    grace: { type: 'string', default: '30' },
    'cpu-slots': { type: 'string', default: '2' },
    'model-slots': { type: 'string', default: '1' },
    'log-level': { type: 'string', default: 'INFO' },
  },
  async run(args) {
    const queues = parseQueues(stringOpt(args, 'queues') ?? 'cpu,model');
    const graceSeconds = nonNegativeOpt(args, 'grace') ?? 30;
    // Stages of a queue running at once in this process; each model stage holds a model in memory.
    const concurrency = { cpu: positiveIntOpt(args, 'cpu-slots') ?? 2, model: positiveIntOpt(args, 'model-slots') ?? 1 };
    const logLevel = (stringOpt(args, 'log-level') ?? 'INFO').toUpperCase();
    if (!['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'].includes(logLevel)) throw new CliError(`--log-level: expected TRACE, DEBUG, INFO, WARN or ERROR, got "${logLevel}"`, 2);
    const { allowPlugins, allowed } = await pluginAllowlistOpt(stringOpt(args, 'allow-plugins'));
    const store = openStore(storeOpt(args));
    // A worker writes every artifact of its stages: refuse a directory that is not a DRO store now, not
    // as a failed activity later (a new, empty or missing directory becomes a store).
    await store.ensureWritable();
    // The experiment's registry: the same stages the local runner resolves DAG nodes against. Loaded
    // lazily: the stage packages pull in tfjs, which other `dro` commands (and --help) must not pay for.
    const stages = (await import('@dro/experiment')).droStageRegistry();
    const { initBackend } = await import('@dro/llm');
    const { createNodeExecutor, installQuietRuntime, startWorker } = await import('@dro/workflows');
    installQuietRuntime(logLevel as 'INFO');
    const address = stringOpt(args, 'address') ?? DEFAULT_ADDRESS;
    const started = Date.now();
    const worker = await startWorker({
      queues,
      address,
      namespace: stringOpt(args, 'namespace') ?? DEFAULT_NAMESPACE,
      backend: stringOpt(args, 'backend'),
      initBackend,
      stages,
      allowPlugins,
      execute: createNodeExecutor({ store, stages }),
      shutdownGraceMs: graceSeconds * 1000,
      concurrency,
      onBundled: (ms) => process.stderr.write(`dro worker: workflow code bundled in ${(ms / 1000).toFixed(1)} s\n`),
    });
    process.stderr.write(
      `dro worker: serving ${worker.queues.join(', ')} at ${address}` +
        `${worker.backend ? `, tfjs backend ${worker.backend}` : ''}, store ${store.root}, stage plugins allowed: ${allowed} (ready in ${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    );
    await worker.done;
    process.stderr.write('dro worker: drained and stopped\n');
    return 0;
  },
};

/**
 * The stage plugins this worker may import from a DAG: --allow-plugins, else $DRO_WORKER_PLUGINS, else
 * none — a workflow's DAG names the module, and whoever can start a workflow writes the DAG.
 */
async function pluginAllowlistOpt(flagValue: string | undefined) {
  // Loaded lazily, as the stages: @dro/pipeline pulls in more than --help should pay for.
  const { describePluginAllowlist, parsePluginAllowlist } = await import('@dro/pipeline');
  const [raw, from] = flagValue !== undefined ? [flagValue, '--allow-plugins'] : [process.env.DRO_WORKER_PLUGINS ?? '', 'DRO_WORKER_PLUGINS'];
  try {
    const allowPlugins = parsePluginAllowlist(raw, from);
    return { allowPlugins, allowed: describePluginAllowlist(allowPlugins) };
  } catch (error) {
    if (error instanceof BadInputError) throw new CliError(error.message, 2);
    throw error;
  }
}
