/** `dro status [RUN_ID]`: recorded runs (local and Temporal) from the store; live status from Temporal. */
import { flag, storeOpt, stringOpt, type Command } from '../command.ts';

export const statusCommand: Command = {
  path: ['status'],
  summary: 'Show a run (default: the latest) or, with --list, every recorded run',
  usage: '[RUN_ID] [--list] [--store DIR|s3://BUCKET/PREFIX] [--engine local|temporal] [--address HOST:PORT] [--namespace NS] [--json]',
  allowPositionals: true,
  options: {
    list: { type: 'boolean', default: false },
    store: { type: 'string' },
    engine: { type: 'string', default: 'local' },
    address: { type: 'string' },
    namespace: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  async run(args) {
    const runId = args.positionals[0];
    if (stringOpt(args, 'engine') === 'temporal') {
      if (!runId) throw new Error('dro status --engine temporal needs a RUN_ID (the workflow id)');
      const wf = await import('@dro/workflows');
      const status = await wf.getTemporalRunStatus({ runId, address: stringOpt(args, 'address'), namespace: stringOpt(args, 'namespace') });
      process.stdout.write(flag(args, 'json') ? JSON.stringify(status) + '\n' : wf.formatTemporalStatus(status));
      return status.state === 'failed' ? 1 : 0;
    }
    const { openStore } = await import('@dro/artifacts');
    const { listRuns, loadRun, formatRunList, formatRunStatus } = await import('@dro/pipeline');
    const store = openStore(storeOpt(args));
    // A torn index entry is named and skipped; every other run is still shown.
    const warn = (error: Error) => process.stderr.write(`dro status: skipped ${error.message}\n`);
    if (flag(args, 'list')) {
      const runs = await listRuns(store, warn);
      process.stdout.write(flag(args, 'json') ? JSON.stringify(runs) + '\n' : formatRunList(runs));
      return 0;
    }
    const run = await loadRun(store, runId, warn);
    process.stdout.write(flag(args, 'json') ? JSON.stringify(run) + '\n' : formatRunStatus(run));
    return 0;
  },
};
