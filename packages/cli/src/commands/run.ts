/**
 * `dro run`: the main job. With no arguments, the whole DRO DAG on Qwen2.5-Coder-0.5B-Instruct (a model that
 * refuses) with the project's data and the quick preset, on the embedded local engine (no server).
 * `--engine temporal` submits the same DAG to a Temporal cluster whose workers (`dro worker`) share the store.
 *
 * Everything is checked before anything is written: the flags, the config and every input file
 * (experiment's checkExperiment), `--force` against the DAG's node ids, and the Temporal server's
 * address; only then are the inputs imported into the store.
 */
import fs from 'node:fs';
import type { Dag } from '@dro/pipeline';
import { CliError, flag, nonNegativeOpt, pathOpt, positiveIntOpt, storeOpt, stringOpt, type Command, type ParsedArgs } from '../command.ts';
import { presetOpt } from './preset-option.ts';

/** What `dro run` reports at the end, from either engine. */
type RunOutcome = Omit<import('@dro/experiment').ExperimentOutcome, 'record'> & { status: string; runId: string; error?: string };

/** `--force a,b`: node ids, each in the DAG; a usage error (exit 2) lists the DAG's node ids otherwise. */
export function parseForce(args: ParsedArgs, dag: Dag): string[] | undefined {
  const raw = stringOpt(args, 'force');
  if (raw === undefined) return undefined;
  const ids = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const known = dag.nodes.map((n) => n.id);
  if (ids.length === 0) throw new CliError(`--force expects node ids separated by commas; the DAG's node ids are: ${known.join(', ')}`, 2);
  const unknown = ids.filter((id) => !known.includes(id));
  if (unknown.length > 0) {
    throw new CliError(
      `--force: no node ${unknown.map((id) => `"${id}"`).join(', ')} in DAG "${dag.name}"; the node ids are: ${known.join(', ')}`,
      2,
    );
  }
  return ids;
}

export const runCommand: Command = {
  path: ['run'],
  summary: 'Run the DRO experiment DAG (default: Qwen2.5-Coder-0.5B-Instruct, project data, quick preset, local engine)',
  usage:
    '[--config FILE] [--preset quick|paper] [--engine local|temporal] [--store DIR|s3://BUCKET/PREFIX] [--concurrency N] [--force NODE,...] ' +
    '[--address HOST:PORT] [--namespace NS] [--server-timeout SECONDS] [--worker-timeout SECONDS] [--json]',
  options: {
    config: { type: 'string' },
    preset: { type: 'string' },
    engine: { type: 'string', default: 'local' },
    store: { type: 'string' },
    concurrency: { type: 'string' },
    force: { type: 'string' },
    address: { type: 'string' },
    namespace: { type: 'string' },
    'server-timeout': { type: 'string' },
    'worker-timeout': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  async run(args) {
    const engine = stringOpt(args, 'engine') ?? 'local';
    if (engine !== 'local' && engine !== 'temporal') throw new CliError(`--engine expects local or temporal, got "${engine}"`, 2);
    const preset = await presetOpt(args);
    const concurrency = positiveIntOpt(args, 'concurrency');
    if (engine === 'temporal' && args.values.force !== undefined) {
      throw new CliError('--force works with --engine local only (a Temporal run reuses every cached node; clear them with `dro gc`)', 2);
    }
    const temporalWaits = { serverTimeoutS: nonNegativeOpt(args, 'server-timeout'), workerTimeoutS: nonNegativeOpt(args, 'worker-timeout') };
    const exp = await import('@dro/experiment');
    const configFile = pathOpt(args, 'config');
    const config = exp.resolveConfig(configFile, preset);
    if (!configFile) requireDefaultModel(config.models[0]!.path);
    // On Temporal each model runs as its own child workflow, with at least one node at a time.
    if (engine === 'temporal' && concurrency !== undefined && concurrency < config.models.length) {
      throw new CliError(
        `--concurrency ${concurrency} is fewer than the experiment's ${config.models.length} models: with --engine temporal each model runs as its own workflow, one node at a time at least; use --concurrency ${config.models.length} or more (or --engine local)`,
        2,
      );
    }

    const started = performance.now();
    process.stderr.write(`dro run: experiment "${config.name}" (${config.preset} preset, ${config.models.map((m) => m.id).join(', ')}) on the ${engine} engine\n`);
    const checked = await exp.checkExperiment(config);
    for (const warning of checked.warnings) process.stderr.write(`dro run: WARNING: ${warning}\n`);
    const force = parseForce(args, checked.dag);
    if (engine === 'temporal') {
      const { connectTemporal, runExperimentOnTemporal } = await import('./run-temporal.ts');
      const temporal = await connectTemporal({ address: stringOpt(args, 'address'), namespace: stringOpt(args, 'namespace') });
      try {
        const prepared = await exp.prepareExperiment(config, storeOpt(args), checked);
        process.stderr.write(`dro run: store ${prepared.store.root}, ${prepared.dag.nodes.length} stages\n`);
        const outcome = await runExperimentOnTemporal(prepared, temporal, { concurrency, ...temporalWaits });
        process.stderr.write(`dro run: ${outcome.status} in ${((performance.now() - started) / 1000).toFixed(1)} s (workflow ${outcome.runId}; \`dro status ${outcome.runId} --engine temporal\`)\n`);
        return await finish(args, exp, outcome, 130);
      } finally {
        await temporal.close();
      }
    }

    // SIGINT, SIGTERM and SIGHUP stop a local run cleanly (the record is saved as cancelled). Installed before the
    // data import, so a signal at any moment ends with a message, a terminal record and 128 + signal.
    const { abortOnSignals } = await import('@dro/pipeline');
    const stop = abortOnSignals((signal) => process.stderr.write(`\ndro run: stopping on ${signal} (send it again to exit at once)…\n`));
    try {
      const prepared = await exp.prepareExperiment(config, storeOpt(args), checked);
      process.stderr.write(`dro run: store ${prepared.store.root}, ${prepared.dag.nodes.length} stages\n`);
      const r = await exp.runExperimentLocally(prepared, { signal: stop.signal, concurrency, force });
      const failed = r.record.nodes.find((n) => n.status === 'failed');
      const hits = r.record.nodes.filter((n) => n.cacheHit).length;
      process.stderr.write(`dro run: ${r.record.status} in ${((performance.now() - started) / 1000).toFixed(1)} s; ${hits}/${r.record.nodes.length} stages were cache hits (run ${r.record.runId}; \`dro status ${r.record.runId}\`)\n`);
      const { record, ...results } = r;
      const outcome: RunOutcome = { ...results, status: record.status, runId: record.runId, error: failed?.error ? `${failed.id}: ${failed.error.message}` : undefined };
      return await finish(args, exp, outcome, stop.exitCode());
    } finally {
      stop.dispose();
    }
  },
};

/**
 * Print the outcome (JSON, or the summary table, the training objectives and the trained-vs-text-prompt
 * comparisons) and return the exit code (`cancelledCode` for a stopped run).
 */
async function finish(args: ParsedArgs, exp: typeof import('@dro/experiment'), outcome: RunOutcome, cancelledCode: number): Promise<number> {
  if (flag(args, 'json')) {
    process.stdout.write(JSON.stringify(outcome) + '\n');
  } else if (outcome.status === 'succeeded') {
    process.stdout.write(`\n${exp.formatSummary(outcome.summary)}`);
    if (outcome.objectives.length) process.stdout.write(`\n${exp.formatObjectives(outcome.objectives)}`);
    if (outcome.comparisons.length) {
      const { formatComparisons } = await import('@dro/evaluate');
      process.stdout.write(`\ntrained prompt vs its text prompt on the held-out queries (paired; Δ r(h) < 0 = toward refusal):\n${formatComparisons(outcome.comparisons)}`);
    }
    process.stdout.write(`\nreport: ${outcome.reportPath}\n`);
  }
  if (outcome.status !== 'succeeded') {
    process.stderr.write(`dro run: ${outcome.status}${outcome.error ? `: ${outcome.error}` : ''}\n`);
    return outcome.status === 'cancelled' ? cancelledCode : 1;
  }
  return 0;
}

function requireDefaultModel(modelPath: string): void {
  // The embedded default needs the setup step's model; say so rather than failing inside a stage.
  if (!fs.existsSync(modelPath)) {
    throw new CliError(`the default model is not in the cache (${modelPath}); run \`node tools/setup/setup.mjs\` first`);
  }
}
