/** `dro verify`: re-hash every stored artifact, check manifests and records; report (and with --remove delete) bad ones. */
import { flag, storeOpt, type Command } from '../command.ts';

export const verifyCommand: Command = {
  path: ['verify'],
  summary: 'Re-hash every artifact and check every manifest and record; --remove deletes the bad ones so runs recompute them',
  usage: '[--store DIR|s3://BUCKET/PREFIX] [--remove] [--adopt] [--json]',
  options: {
    store: { type: 'string' },
    remove: { type: 'boolean', default: false },
    adopt: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
  async run(args) {
    const { openStore } = await import('@dro/artifacts');
    const store = openStore(storeOpt(args));
    const started = performance.now();
    const report = await store.verifyAll({ remove: flag(args, 'remove'), adopt: flag(args, 'adopt') });
    const seconds = (performance.now() - started) / 1000;
    const bad = report.badObjects.length + report.badManifests.length + report.badRecords.length;
    if (flag(args, 'json')) {
      process.stdout.write(JSON.stringify({ ...report, seconds }) + '\n');
    } else {
      const lines = [
        `${store.root}: ${report.objects} artifacts (${(report.bytes / 1e6).toFixed(1)} MB) re-hashed in ${seconds.toFixed(1)} s; ` +
          `${report.badObjects.length} corrupt, ${report.badManifests.length} unreadable manifests, ${report.badRecords.length} unreadable records`,
        ...report.badObjects.map((b) => `corrupt: ${b.file} (${b.problem})`),
        ...report.badManifests.map((file) => `unreadable manifest: ${file}`),
        ...report.badRecords.map((file) => `unreadable record: ${file}`),
        ...report.removed.map((file) => `removed: ${file}`),
        ...report.skipped.map((file) => `left alone (not made by the store): ${file}`),
      ];
      if (report.layout === 'legacy') {
        lines.push(report.adopted ? `marked ${store.root} as a DRO store (store format 1)` : `${store.root} is a store from before store markers: run again with --adopt to mark it, so runs and gc accept it`);
      }
      if (bad > 0 && !flag(args, 'remove')) lines.push('run again with --remove to delete the bad entries; the next run recomputes what they held');
      process.stdout.write(lines.join('\n') + '\n');
    }
    // Exit 1 while anything is bad and was left in place, so scripts and cron can alert on it.
    return bad > 0 && !flag(args, 'remove') ? 1 : 0;
  },
};
