/** `dro stages` (list the stages) and `dro stage NAME` (run one stage and what it needs, locally). */
import { CliError, pathOpt, positiveIntOpt, storeOpt, type Command } from '../command.ts';
import { presetOpt } from './preset-option.ts';

export const stagesCommand: Command = {
  path: ['stages'],
  summary: 'List the pipeline stages (name, source, version, resource class, inputs → outputs; --config shows its stage plugins in place) and which judge and selection produce the held-out numbers per preset',
  usage: '[--config FILE] [--json]',
  options: { config: { type: 'string' }, json: { type: 'boolean', default: false } },
  async run(args) {
    const exp = await import('@dro/experiment');
    const configFile = pathOpt(args, 'config');
    const config = exp.resolveConfig(configFile);
    // Listing a config's stages loads and checks its stage plugins: a plugin that does not fit fails here.
    const stages = await exp.listStages(configFile ? config : undefined);
    // The verdicts every rate counts are decided by the sampling stage (see verdicts.ts in @dro/artifacts).
    const verdicts = Object.fromEntries((['quick', 'paper'] as const).map((preset) => [preset, exp.heldOutVerdict({ ...config, preset })]));
    if (args.values.json === true) {
      process.stdout.write(JSON.stringify({ stages, verdicts }) + '\n');
      return 0;
    }
    const rows = stages.map((s) => {
      const ins = [...s.inputs, ...s.variadicInputs.map((v) => `${v}:*`)].join(', ') || '-';
      const source = s.identity ? `${s.source} (${s.identity.startsWith('sha256:') ? s.identity.slice(0, 19) : s.identity})` : s.source;
      return `${s.name.padEnd(18)} v${s.version.padEnd(8)} ${s.needs.padEnd(6)} ${ins} → ${s.outputs.join(', ')}  [${source}]`;
    });
    const judged = Object.entries(verdicts).map(([preset, v]) => `  ${preset.padEnd(6)} ${v}`);
    process.stdout.write(
      `${'stage'.padEnd(18)} ${'ver'.padEnd(9)} ${'needs'.padEnd(6)} inputs → outputs  [source]\n${rows.join('\n')}\n\n` +
        `held-out verdicts (decided once by sampling; labels, evaluate, comparisons and the report count them):\n${judged.join('\n')}\n`,
    );
    return 0;
  },
};

export const stageCommand: Command = {
  path: ['stage'],
  summary: 'Run one stage (every node of it in the experiment DAG) and the stages it needs, locally',
  usage: 'NAME [--config FILE] [--preset quick|paper] [--store DIR|s3://BUCKET/PREFIX] [--concurrency N]',
  allowPositionals: true,
  options: { config: { type: 'string' }, preset: { type: 'string' }, store: { type: 'string' }, concurrency: { type: 'string' } },
  async run(args) {
    const target = args.positionals[0];
    if (!target || args.positionals.length > 1) throw new CliError('expected exactly one stage name or node id (see `dro stages`)', 2);
    const exp = await import('@dro/experiment');
    const { abortOnSignals, formatRunStatus } = await import('@dro/pipeline');
    const concurrency = positiveIntOpt(args, 'concurrency');
    const configFile = pathOpt(args, 'config');
    const preset = await presetOpt(args);
    const config = exp.resolveConfig(configFile, preset);
    // Checked (and the target looked up) before anything is imported into the store.
    const checked = await exp.checkExperiment(config);
    for (const warning of checked.warnings) process.stderr.write(`dro stage: WARNING: ${warning}\n`);
    try {
      exp.dagFor(checked.dag, target);
    } catch (err) {
      throw new CliError((err as Error).message, 2);
    }
    const prepared = await exp.prepareExperiment(config, storeOpt(args), checked);
    const dag = exp.dagFor(prepared.dag, target);
    const stop = abortOnSignals((signal) => process.stderr.write(`\ndro stage: stopping on ${signal} (send it again to exit at once)…\n`));
    try {
      const r = await exp.runExperimentLocally({ ...prepared, dag }, { signal: stop.signal, concurrency });
      process.stdout.write(formatRunStatus(r.record));
      return r.record.status === 'succeeded' ? 0 : r.record.status === 'cancelled' ? stop.exitCode() : 1;
    } finally {
      stop.dispose();
    }
  },
};
