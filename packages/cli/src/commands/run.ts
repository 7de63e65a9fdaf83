/**
 * `dro run`: the main job. With no arguments, the whole DRO DAG on SmolLM2-135M-Instruct with the project's
 * data and the quick preset, on the embedded local engine (no server). `--engine temporal` submits the same
 * DAG to a Temporal cluster whose workers (`dro worker`) share the store.
 *
 * Everything is checked before anything is written: the flags, the config and every input file
 * (experiment's checkExperiment), `--force` against the DAG's node ids, and the Temporal server's
 * address; only then are the inputs imported into the store.
 */
import fs from 'node:fs';
import type { Dag } from '@dro/pipeline';
import { CliError, flag, nonNegativeOpt, pathOpt, positiveIntOpt, stringOpt, type Command, type ParsedArgs } from '../command.ts';

/** What `dro run` reports at the end, from either engine. */
type RunOutcome = { status: string; runId: string; summary: import('@dro/experiment').SummaryRow[]; reportPath: string | null; error?: string };

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
  summary: 'Run the DRO experiment DAG (default: SmolLM2, project data, quick preset, local engine)',
  usage:
    '[--config FILE] [--preset quick|paper] [--engine local|temporal] [--store DIR] [--concurrency N] [--force NODE,...] ' +
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
    const preset = stringOpt(args, 'preset');
    if (preset !== undefined && preset !== 'quick' && preset !== 'paper') throw new CliError(`--preset expects quick or paper, got "${preset}"`, 2);
    const concurrency = positiveIntOpt(args, 'concurrency');
    if (engine === 'temporal' && args.values.force !== undefined) {
      throw new CliError('--force works with --engine local only (a Temporal run reuses every cached node; clear them with `dro gc`)', 2);
    }
    const temporalWaits = { serverTimeoutS: nonNegativeOpt(args, 'server-timeout'), workerTimeoutS: nonNegativeOpt(args, 'worker-timeout') };
    const exp = await import('@dro/experiment');
    const configFile = pathOpt(args, 'config');
    let config = configFile ? exp.loadConfig(configFile) : exp.defaultConfig();
    if (preset) config = exp.withPreset(config, preset, exp.configSetsLabelSource(configFile));
    if (!configFile) requireDefaultModel(config.models[0]!.path);

    const started = performance.now();
    process.stderr.write(`dro run: experiment "${config.name}" (${config.preset} preset, ${config.models.map((m) => m.id).join(', ')}) on the ${engine} engine\n`);
    const checked = exp.checkExperiment(config);
    for (const warning of checked.warnings) process.stderr.write(`dro run: WARNING: ${warning}\n`);
    const force = parseForce(args, checked.dag);
    const temporal = engine === 'temporal' ? await (await import('./run-temporal.ts')).connectTemporal({ address: stringOpt(args, 'address'), namespace: stringOpt(args, 'namespace') }) : null;
    let outcome: RunOutcome;
    try {
      const prepared = await exp.prepareExperiment(config, pathOpt(args, 'store'), checked);
      process.stderr.write(`dro run: store ${prepared.store.root}, ${prepared.dag.nodes.length} stages\n`);
      if (temporal) {
        const { runExperimentOnTemporal } = await import('./run-temporal.ts');
        outcome = await runExperimentOnTemporal(prepared, temporal, { concurrency, ...temporalWaits });
        process.stderr.write(`dro run: ${outcome.status} in ${((performance.now() - started) / 1000).toFixed(1)} s (workflow ${outcome.runId}; \`dro status ${outcome.runId} --engine temporal\`)\n`);
      } else {
        outcome = await runLocally(exp, prepared, { concurrency, force, started });
      }
    } finally {
      await temporal?.close();
    }

    if (flag(args, 'json')) {
      process.stdout.write(JSON.stringify(outcome) + '\n');
    } else if (outcome.status === 'succeeded') {
      process.stdout.write(`\n${exp.formatSummary(outcome.summary)}\nreport: ${outcome.reportPath}\n`);
    }
    if (outcome.status !== 'succeeded') {
      process.stderr.write(`dro run: ${outcome.status}${outcome.error ? `: ${outcome.error}` : ''}\n`);
      return outcome.status === 'cancelled' ? 130 : 1;
    }
    return 0;
  },
};

/** The local engine: SIGINT stops it cleanly (Ctrl-C twice exits at once). */
async function runLocally(
  exp: typeof import('@dro/experiment'),
  prepared: import('@dro/experiment').PreparedExperiment,
  opts: { concurrency?: number; force?: string[]; started: number },
): Promise<RunOutcome> {
  const { abortOnSigint } = await import('@dro/pipeline');
  const sigint = abortOnSigint(() => process.stderr.write('\ndro run: stopping (Ctrl-C again to exit at once)…\n'));
  try {
    const r = await exp.runExperimentLocally(prepared, { signal: sigint.signal, concurrency: opts.concurrency, force: opts.force });
    const failed = r.record.nodes.find((n) => n.status === 'failed');
    const hits = r.record.nodes.filter((n) => n.cacheHit).length;
    process.stderr.write(`dro run: ${r.record.status} in ${((performance.now() - opts.started) / 1000).toFixed(1)} s; ${hits}/${r.record.nodes.length} stages were cache hits (run ${r.record.runId}; \`dro status ${r.record.runId}\`)\n`);
    return { status: r.record.status, runId: r.record.runId, summary: r.summary, reportPath: r.reportPath, error: failed?.error ? `${failed.id}: ${failed.error.message}` : undefined };
  } finally {
    sigint.dispose();
  }
}

function requireDefaultModel(modelPath: string): void {
  // The embedded default needs the setup step's model; say so rather than failing inside a stage.
  if (!fs.existsSync(modelPath)) {
    throw new CliError(`the default model is not in the cache (${modelPath}); run \`node tools/setup/setup.mjs\` first`);
  }
}
