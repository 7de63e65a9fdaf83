/**
 * `dro run`: the main job. With no arguments, the whole DRO DAG on Qwen2.5-Coder-0.5B-Instruct (a model that
 * refuses) with the project's data and the quick preset, on the embedded local engine (no server).
 * `--engine temporal` submits the same DAG to a Temporal cluster whose workers (`dro worker`) share the store.
 */
import fs from 'node:fs';
import { CliError, flag, numberOpt, stringOpt, type Command, type ParsedArgs } from '../command.ts';

export const runCommand: Command = {
  path: ['run'],
  summary: 'Run the DRO experiment DAG (default: Qwen2.5-Coder-0.5B-Instruct, project data, quick preset, local engine)',
  usage: '[--config FILE] [--preset quick|paper] [--engine local|temporal] [--store DIR] [--concurrency N] [--force NODE,...] [--address HOST:PORT] [--namespace NS] [--json]',
  options: {
    config: { type: 'string' },
    preset: { type: 'string' },
    engine: { type: 'string', default: 'local' },
    store: { type: 'string' },
    concurrency: { type: 'string' },
    force: { type: 'string' },
    address: { type: 'string' },
    namespace: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  async run(args) {
    const engine = stringOpt(args, 'engine') ?? 'local';
    if (engine !== 'local' && engine !== 'temporal') throw new CliError(`--engine expects local or temporal, got "${engine}"`, 2);
    const preset = stringOpt(args, 'preset');
    if (preset !== undefined && preset !== 'quick' && preset !== 'paper') throw new CliError(`--preset expects quick or paper, got "${preset}"`, 2);
    const exp = await import('@dro/experiment');
    const configFile = stringOpt(args, 'config');
    let config = configFile ? exp.loadConfig(configFile) : exp.defaultConfig();
    if (preset) config = exp.withPreset(config, preset, exp.configSetsLabelSource(configFile));
    if (!configFile) requireDefaultModel(config.models[0]!.path);

    const started = performance.now();
    process.stderr.write(`dro run: experiment "${config.name}" (${config.preset} preset, ${config.models.map((m) => m.id).join(', ')}) on the ${engine} engine\n`);
    if (engine === 'temporal') {
      const prepared = await exp.prepareExperiment(config, stringOpt(args, 'store'));
      process.stderr.write(`dro run: store ${prepared.store.root}, ${prepared.dag.nodes.length} stages\n`);
      const { runExperimentOnTemporal } = await import('./run-temporal.ts');
      const outcome = await runExperimentOnTemporal(prepared, { address: stringOpt(args, 'address'), namespace: stringOpt(args, 'namespace') });
      process.stderr.write(`dro run: ${outcome.status} in ${((performance.now() - started) / 1000).toFixed(1)} s (workflow ${outcome.runId})\n`);
      return finish(args, exp, outcome, 130);
    }

    // SIGINT, SIGTERM and SIGHUP stop a local run cleanly (the record is saved as cancelled). Installed before the
    // data import, so a signal at any moment ends with a message, a terminal record and 128 + signal.
    const { abortOnSignals } = await import('@dro/pipeline');
    const stop = abortOnSignals((signal) => process.stderr.write(`\ndro run: stopping on ${signal} (send it again to exit at once)…\n`));
    try {
      const prepared = await exp.prepareExperiment(config, stringOpt(args, 'store'));
      process.stderr.write(`dro run: store ${prepared.store.root}, ${prepared.dag.nodes.length} stages\n`);
      const force = stringOpt(args, 'force')?.split(',').filter(Boolean);
      const r = await exp.runExperimentLocally(prepared, { signal: stop.signal, concurrency: numberOpt(args, 'concurrency'), force });
      const failed = r.record.nodes.find((n) => n.status === 'failed');
      const hits = r.record.nodes.filter((n) => n.cacheHit).length;
      process.stderr.write(`dro run: ${r.record.status} in ${((performance.now() - started) / 1000).toFixed(1)} s; ${hits}/${r.record.nodes.length} stages were cache hits (run ${r.record.runId}; \`dro status ${r.record.runId}\`)\n`);
      const { record, ...results } = r;
      const outcome: Outcome = { ...results, status: record.status, runId: record.runId, error: failed?.error ? `${failed.id}: ${failed.error.message}` : undefined };
      return finish(args, exp, outcome, stop.exitCode());
    } finally {
      stop.dispose();
    }
  },
};

type Outcome = Omit<import('@dro/experiment').ExperimentOutcome, 'record'> & { status: string; runId: string; error?: string };

/**
 * Print the outcome (JSON, or the summary table, the training objectives and the trained-vs-text-prompt
 * comparisons) and return the exit code (`cancelledCode` for a stopped run).
 */
async function finish(args: ParsedArgs, exp: typeof import('@dro/experiment'), outcome: Outcome, cancelledCode: number): Promise<number> {
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
