/** `dro report`: write a stored report artifact (report-html/v1) out as an HTML file and print its path. */
import { copyFileSync } from 'node:fs';
import { CliError, pathOpt, requireString, type Command } from '../command.ts';

export const reportCommand: Command = {
  path: ['report'],
  summary: 'Write a stored HTML report (by artifact digest) to a file and print its path',
  usage: '--ref DIGEST [--store DIR] [--out FILE]',
  options: {
    ref: { type: 'string' },
    store: { type: 'string' },
    out: { type: 'string' },
  },
  async run(args) {
    const { LocalArtifactStore, REPORT_SCHEMA } = await import('@dro/artifacts');
    const { reportHtmlPath } = await import('@dro/evaluate');
    const store = new LocalArtifactStore({ root: pathOpt(args, 'store') });
    const digest = requireString(args, 'ref');
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new CliError(`--ref expects an artifact digest (64 hex characters), got "${digest}"`, 2);
    if (!(await store.has(digest))) throw new CliError(`artifact ${digest} is not in store ${store.root}`);
    const manifest = await store.manifest(digest);
    if (manifest.schema !== REPORT_SCHEMA.name) throw new CliError(`artifact ${digest} is a ${manifest.schema} artifact, not a report (${REPORT_SCHEMA.name})`);
    let file = await reportHtmlPath(store, { digest, format: manifest.format, schema: manifest.schema });
    const out = pathOpt(args, 'out');
    if (out) {
      copyFileSync(file, out);
      file = out;
    }
    process.stdout.write(`${file}\n`);
    return 0;
  },
};
