/**
 * The store commands on an S3 store, as a user runs them (`bin/dro.mjs` in a child process, `--store
 * s3://…` or `$DRO_STORE`, endpoint and keys in the AWS environment variables) against a real SeaweedFS:
 * status lists runs, verify finds and removes corruption done through the S3 API, gc collects, report
 * serves the page from the local cache, and a location that is not a store is refused before anything is
 * written.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportHtmlSchema, S3ArtifactStore, S3Objects, codeVersion, parseS3Uri } from '@dro/artifacts';
import { startSeaweedFs, type SeaweedFsHandle } from '@dro/artifacts/testing';
import { saveRunRecord, type RunRecord } from '@dro/pipeline';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const DRO = path.join(repoRoot, 'bin', 'dro.mjs');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'dro-s3-cli-'));
const BUCKET = 'dro-cli';
let server: SeaweedFsHandle;

beforeAll(async () => {
  server = await startSeaweedFs();
  await server.createBucket(BUCKET);
});
afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** `dro …` with the server's AWS variables and a cache of its own (where S3 report pages land). */
function dro(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const out = spawnSync(process.execPath, [DRO, ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, ...server.env, DRO_CACHE: path.join(tmp, 'cache'), ...env } });
  return { code: out.status, stdout: out.stdout, stderr: out.stderr };
}

const storeAt = (prefix: string) => new S3ArtifactStore({ uri: `s3://${BUCKET}/${prefix}`, settings: server.settings, cacheDir: path.join(tmp, 'test-cache') });
const made = { producer: { stage: 'report', version: '2' }, params: {}, inputs: {} };
const HTML = '<!DOCTYPE html><title>DRO report</title><p>the real report</p>';

function runRecord(runId: string): RunRecord {
  const at = new Date().toISOString();
  return {
    runId, dagName: 'cli-s3-test', engine: 'local', status: 'succeeded', startedAt: at, endedAt: at, durationMs: 1,
    code: codeVersion(), owner: { host: os.hostname(), pid: process.pid }, dag: { name: 'cli-s3-test', nodes: [] }, nodes: [],
  };
}

describe('store commands on an S3 store', () => {
  it('status lists the runs, verify finds and removes an object corrupted through the S3 API, gc collects', async () => {
    const store = storeAt('commands');
    await saveRunRecord(store, runRecord('run-s3'));
    const loose = await store.putJson(reportHtmlSchema.name, { html: '<!DOCTYPE html><p>unreferenced</p>', title: 'x' }, made);

    const listed = dro(['status', '--list', '--store', store.root]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('run-s3');
    const viaEnv = dro(['status', '--list'], { DRO_STORE: `${store.root}/` });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(viaEnv.stdout).toContain('run-s3');

    const objects = new S3Objects(parseS3Uri(store.root), server.settings);
    const rel = `objects/${loose.digest.slice(0, 2)}/${loose.digest}`;
    const bytes = (await objects.get(rel))!;
    bytes[5] ^= 0x01;
    await objects.put(rel, bytes);
    const found = dro(['verify', '--store', store.root]);
    expect(found.code).toBe(1);
    expect(found.stdout + found.stderr).toContain(`${store.root}/${rel}`);
    const removed = dro(['verify', '--store', store.root, '--remove']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(await store.has(loose.digest)).toBe(false);

    const other = await store.putJson(reportHtmlSchema.name, { html: '<!DOCTYPE html><p>also unreferenced</p>', title: 'y' }, made);
    const gc = dro(['gc', '--store', store.root, '--grace', '0', '--json']);
    expect(gc.code, gc.stderr).toBe(0);
    expect((JSON.parse(gc.stdout) as { deleted: string[] }).deleted).toEqual([other.digest]);
    expect((await store.list()).length).toBe(1); // the run record, pinned
  });

  it('report prints a page in the local cache, made from the verified artifact; --out writes it where asked', async () => {
    const store = storeAt('report');
    const ref = await store.putJson(reportHtmlSchema.name, { html: HTML, title: 't' }, made);
    const served = dro(['report', '--ref', ref.digest, '--store', store.root]);
    expect(served.code, served.stderr).toBe(0);
    expect(served.stdout.trim()).toBe(path.join(tmp, 'cache', 's3', 'reports', `${ref.digest}.html`));
    expect(readFileSync(served.stdout.trim(), 'utf8')).toBe(HTML);
    const out = path.join(tmp, 'report.html');
    const copied = dro(['report', '--ref', ref.digest, '--store', store.root, '--out', out]);
    expect(copied.code, copied.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(HTML);
  });

  it('refuses what is not a store: a prefix holding other data, a missing bucket, a URI of another kind', async () => {
    const objects = new S3Objects(parseS3Uri(`s3://${BUCKET}/not-a-store`), server.settings);
    await objects.put('notes.txt', 'mine');
    const gc = dro(['gc', '--store', `s3://${BUCKET}/not-a-store`, '--grace', '0']);
    expect(gc.code).toBe(1);
    expect(gc.stderr).toContain(`s3://${BUCKET}/not-a-store is not a DRO store (no dro-store.json; it holds s3://${BUCKET}/not-a-store/notes.txt)`);
    expect((await objects.get('notes.txt'))!.toString()).toBe('mine');

    const missing = dro(['verify', '--store', 's3://no-such-bucket/x']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/bucket "no-such-bucket" does not exist at endpoint http:\/\/127\.0\.0\.1:\d+/);

    const other = dro(['verify', '--store', 'gs://bucket/x']);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('--store "gs://bucket/x": only directories and s3://bucket/prefix URIs are stores');
  });
});
