/** `dro gc`: delete artifacts no recorded run references (keeps the recent ones, see --grace). */
import { flag, nonNegativeOpt, storeOpt, type Command } from '../command.ts';

export const gcCommand: Command = {
  path: ['gc'],
  summary: 'Delete store artifacts that no recorded run references (--dry-run to only report)',
  usage: '[--store DIR|s3://BUCKET/PREFIX] [--dry-run] [--grace MINUTES] [--json]',
  options: {
    store: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    grace: { type: 'string', default: '15' },
    json: { type: 'boolean', default: false },
  },
  async run(args) {
    const { openStore } = await import('@dro/artifacts');
    const store = openStore(storeOpt(args));
    // Refuses (NotAStoreError, exit 1) a directory without the store marker before deleting anything.
    const report = await store.gc({ dryRun: flag(args, 'dry-run'), graceMs: (nonNegativeOpt(args, 'grace') ?? 15) * 60_000 });
    if (flag(args, 'json')) process.stdout.write(JSON.stringify(report) + '\n');
    else {
      const verb = report.dryRun ? 'would delete' : 'deleted';
      process.stdout.write(
        `${store.root}: kept ${report.kept} artifacts; ${verb} ${report.deleted.length} (${(report.bytesFreed / 1e6).toFixed(1)} MB), ` +
          `${report.recordsDeleted.length} stale records, ${report.strayFilesDeleted} stray files\n`,
      );
    }
    for (const file of report.badRecords) {
      process.stderr.write(`dro gc: unreadable record ${file} (torn, or a link or other file type gc does not follow): no artifact was deleted while it may pin some (delete or repair it; \`dro verify --remove\` clears torn records)\n`);
    }
    if (report.skipped.length > 0) {
      const shown = report.skipped.slice(0, 5).join(', ');
      process.stderr.write(`dro gc: left alone ${report.skipped.length} entries the store did not create (links, other names): ${shown}${report.skipped.length > 5 ? ', …' : ''}\n`);
    }
    return 0;
  },
};
