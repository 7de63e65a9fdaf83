/**
 * `dro report`: write a stored report artifact (report-html/v1) out as an HTML file and print its path.
 * The page comes from the artifact itself, verified against its digest: `--out` writes it straight to
 * the file (nothing is written into the store, so it works on a read-only store), and without `--out`
 * the page kept under the store's reports/ (an S3 store: in the local cache, `$DRO_CACHE/s3/reports/`)
 * is checked against the artifact before its path is printed.
 */
import { CliError, pathOpt, requireString, storeOpt, type Command } from '../command.ts';

export const reportCommand: Command = {
  path: ['report'],
  summary: 'Write a stored HTML report (by artifact digest) to a file and print its path',
  usage: '--ref DIGEST [--store DIR|s3://BUCKET/PREFIX] [--out FILE]',
  options: {
    ref: { type: 'string' },
    store: { type: 'string' },
    out: { type: 'string' },
  },
  async run(args) {
    const { openStore, reportHtmlSchema, writeUserFile } = await import('@dro/artifacts');
    const { reportHtmlPath } = await import('@dro/evaluate');
    const store = openStore(storeOpt(args));
    const digest = requireString(args, 'ref');
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new CliError(`--ref expects an artifact digest (64 hex characters), got "${digest}"`, 2);
    if (!(await store.has(digest))) throw new CliError(`artifact ${digest} is not in store ${store.root}`);
    const manifest = await store.manifest(digest);
    if (manifest.schema !== reportHtmlSchema.name) throw new CliError(`artifact ${digest} is a ${manifest.schema} artifact, not a report (${reportHtmlSchema.name})`);
    const ref = { digest, format: manifest.format, schema: manifest.schema };
    const out = pathOpt(args, 'out');
    if (out) {
      const { html } = await store.getJson<{ html: string }>(ref);
      writeUserFile(out, html, 'report');
      process.stdout.write(`${out}\n`);
      return 0;
    }
    try {
      process.stdout.write(`${await reportHtmlPath(store, ref)}\n`);
    } catch (error) {
      // The page is written into the store on first use; a store this process cannot write still has --out.
      const code = (error as { code?: string }).code;
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') throw new CliError(`${(error as Error).message}; use --out FILE to write the report elsewhere`);
      throw error;
    }
    return 0;
  },
};
