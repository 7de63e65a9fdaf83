/**
 * The store commands end to end, as a user runs them (`bin/dro.mjs` in a child process) on real stores:
 * gc and run refuse a directory that is not a DRO store (a real git repository), a store from before
 * markers is reported and adopted by `dro verify --adopt`, `dro verify` finds and removes corruption,
 * `dro report` never serves a linked or stale page and works on a read-only store, `dro status --list`
 * names and skips a torn record, and SIGTERM stops `dro run` with a message and a cancelled record.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalArtifactStore, reportHtmlSchema, STORE_MARKER, codeVersion } from '@dro/artifacts';
import { listRuns, saveRunRecord, type RunRecord } from '@dro/pipeline';
import { writeTinyGgufModel } from '@dro/llm/testing';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const DRO = path.join(repoRoot, 'bin', 'dro.mjs');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'dro-store-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const canUnshare = spawnSync('unshare', ['-Urm', 'true']).status === 0;
if (!canUnshare) console.warn('store-commands: `unshare -Urm` is not available here; the read-only store test is skipped');

function dro(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const out = spawnSync(process.execPath, [DRO, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: out.status, stdout: out.stdout, stderr: out.stderr };
}

function snapshot(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => path.join(e.parentPath, e.name))
    .map((file) => `${path.relative(dir, file)} ${statSync(file).size} ${statSync(file).mtimeMs}`)
    .sort();
}

let count = 0;
const freshRoot = () => path.join(tmp, `store-${count++}`);
const made = { producer: { stage: 'report', version: '2' }, params: {}, inputs: {} };
const HTML = '<!DOCTYPE html><title>DRO report</title><p>the real report</p>';

/** A minimal finished run, so the store has a pinned record and `dro status` something to show. */
function runRecord(runId: string): RunRecord {
  const at = new Date().toISOString();
  return {
    runId, dagName: 'cli-test', engine: 'local', status: 'succeeded', startedAt: at, endedAt: at, durationMs: 1,
    code: codeVersion(), owner: { host: os.hostname(), pid: process.pid }, dag: { name: 'cli-test', nodes: [] }, nodes: [],
  };
}

/** A directory with a tiny random GGUF model, a few queries and a config.json whose store is ./store. */
/** Overrides that make the tiny experiment's full run take seconds (as experiment/test/tiny-experiment.ts). */
const FAST = {
  'data-prep': { limitPerLabel: 4 },
  sampling: { samples: 1, minNewTokens: 1, maxNewTokens: { harmful: 2, harmless: 2 } },
  directions: { boundary: { maxEpochs: 10, folds: 2 } },
  'dro-train': { epochs: 1, batchSize: 4, microBatchSize: 4, maxQueries: 4 },
  'reference-answers': { maxNewTokens: 2, maxQueries: 2 },
  evaluate: { capabilityQueries: 2 },
};

function tinyExperiment(name: string, extra: Record<string, unknown> = {}): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  const lines = (file: string) => readFileSync(path.join(repoRoot, 'data', 'queries', file), 'utf8').trim().split('\n').slice(0, 40);
  writeFileSync(path.join(dir, 'train.jsonl'), lines('train.jsonl').join('\n') + '\n');
  writeFileSync(path.join(dir, 'heldout.jsonl'), lines('heldout.jsonl').join('\n') + '\n');
  const config = {
    name,
    preset: 'quick',
    models: [{ id: 'tiny', path: writeTinyGgufModel(path.join(dir, 'tiny.gguf'), 'F32') }],
    queries: { train: 'train.jsonl', eval: ['heldout.jsonl'] },
    prompts: { default: path.join(repoRoot, 'data', 'prompts', 'default.txt') },
    basicPrompt: 'default',
    labelSource: 'sampling',
    store: 'store',
    ...extra,
  };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

describe('dro gc / dro run refuse what is not a DRO store', () => {
  it('a git repository: gc and run exit 1 saying so, and not one file of it changes', () => {
    const repo = path.join(tmp, 'repo');
    mkdirSync(repo);
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, stdio: 'pipe' });
    git('init', '-q');
    for (let i = 0; i < 4; i++) writeFileSync(path.join(repo, `f${i}.txt`), `${i}\n`);
    git('add', '.');
    git('commit', '-qm', 'x');
    const before = snapshot(repo);

    const gc = dro('gc', '--store', path.join(repo, '.git'), '--grace', '0');
    expect(gc.code).toBe(1);
    expect(gc.stderr).toMatch(/NotAStoreError: .*\.git is not a DRO store \(no dro-store\.json; it holds .*\), so dro will not garbage-collect it/);
    const experiment = tinyExperiment('into-git');
    const run = dro('run', '--store', repo, '--config', path.join(experiment, 'config.json'));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${repo} is not a DRO store`);
    expect(snapshot(repo)).toEqual(before);
    git('fsck', '--strict');
  });

  it('a store from before markers: gc exits 1 with what to do; `dro verify --adopt` marks it; then gc runs', async () => {
    const root = freshRoot();
    const store = new LocalArtifactStore({ root });
    const pinned = await store.putJson(reportHtmlSchema.name, { html: HTML, title: 't' }, made);
    await store.records.put('runs', 'r', {}, { refs: [pinned.digest], pin: true });
    unlinkSync(path.join(root, STORE_MARKER));

    const gc = dro('gc', '--store', root, '--grace', '0');
    expect(gc.code).toBe(1);
    expect(gc.stderr).toContain(`${root} is a DRO store from before store markers`);
    expect(gc.stderr).toContain(`dro verify --store ${root} --adopt`);
    const adopt = dro('verify', '--store', root, '--adopt');
    expect(adopt.code, adopt.stderr).toBe(0);
    expect(adopt.stdout).toMatch(/1 artifacts \(0\.0 MB\) re-hashed in [\d.]+ s; 0 corrupt/);
    expect(adopt.stdout).toContain(`marked ${root} as a DRO store`);
    const after = dro('gc', '--store', root, '--grace', '0');
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toContain('kept 1 artifacts');
  });
});

describe('dro verify', () => {
  it('finds a bit-flipped object (exit 1, naming the file) and --remove deletes it so the next run recomputes it', async () => {
    const root = freshRoot();
    const store = new LocalArtifactStore({ root });
    const good = await store.putJson(reportHtmlSchema.name, { html: HTML, title: 'good' }, made);
    const bad = await store.putJson(reportHtmlSchema.name, { html: HTML, title: 'bad' }, made);
    const file = store.pathOf(bad);
    const bytes = readFileSync(file);
    bytes[5] ^= 0x01;
    writeFileSync(file, bytes);

    const found = dro('verify', '--store', root);
    expect(found.code).toBe(1);
    expect(found.stdout).toContain('2 artifacts');
    expect(found.stdout).toContain(`corrupt: ${file}`);
    const removed = dro('verify', '--store', root, '--remove', '--json');
    expect(removed.code, removed.stderr).toBe(0);
    expect((JSON.parse(removed.stdout) as { removed: string[] }).removed).toEqual([store.manifestPath(bad.digest), file]);
    expect(await store.has(bad.digest)).toBe(false);
    await store.verify(good.digest);
  });
});

describe('dro report', () => {
  it('never serves a linked or tampered page: the page always comes from the verified artifact', async () => {
    const root = freshRoot();
    const store = new LocalArtifactStore({ root });
    const ref = await store.putJson(reportHtmlSchema.name, { html: HTML, title: 't' }, made);
    const secret = path.join(tmp, 'secret.txt');
    writeFileSync(secret, 'SECRET outside the store');
    const page = path.join(root, 'reports', `${ref.digest}.html`);
    mkdirSync(path.dirname(page), { recursive: true });
    symlinkSync(secret, page);

    const out = path.join(tmp, 'out.html');
    const copied = dro('report', '--ref', ref.digest, '--store', root, '--out', out);
    expect(copied.code, copied.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(HTML);
    const served = dro('report', '--ref', ref.digest, '--store', root);
    expect(served.code, served.stderr).toBe(0);
    expect(served.stdout.trim()).toBe(page);
    expect(readFileSync(page, 'utf8')).toBe(HTML); // the link was replaced by the real page
    expect(readFileSync(secret, 'utf8')).toBe('SECRET outside the store');

    writeFileSync(page, '<p>tampered</p>');
    expect(dro('report', '--ref', ref.digest, '--store', root).code).toBe(0);
    expect(readFileSync(page, 'utf8')).toBe(HTML);
  });

  it('--out onto a FIFO or a directory is refused and leaves it as it was (never replaced by a file)', async () => {
    const root = freshRoot();
    const store = new LocalArtifactStore({ root });
    const ref = await store.putJson(reportHtmlSchema.name, { html: HTML, title: 't' }, made);
    const fifo = path.join(tmp, 'report-fifo.html');
    execFileSync('mkfifo', [fifo]);
    const r = dro('report', '--ref', ref.digest, '--store', root, '--out', fifo);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`cannot write report ${fifo}: it is a FIFO (named pipe), not a regular file`);
    expect(statSync(fifo).isFIFO()).toBe(true);
    const dir = path.join(tmp, 'report-dir.html');
    mkdirSync(dir);
    expect(dro('report', '--ref', ref.digest, '--store', root, '--out', dir).stderr).toContain(`${dir}: it is a directory`);
  });

  it.skipIf(!canUnshare)('--out works on a read-only store (nothing is written into the store)', async () => {
    const root = freshRoot();
    const store = new LocalArtifactStore({ root });
    const ref = await store.putJson(reportHtmlSchema.name, { html: HTML, title: 't' }, made);
    const outDir = path.join(tmp, 'ro-out');
    mkdirSync(outDir);
    const command = `mount --bind ${root} ${root} && mount -o remount,bind,ro ${root} && exec '${process.execPath}' '${DRO}' report --ref ${ref.digest} --store ${root} --out ${outDir}/report.html`;
    const result = spawnSync('unshare', ['-Urm', 'sh', '-c', command], { encoding: 'utf8', cwd: tmp });
    expect(result.status, result.stderr).toBe(0);
    expect(readFileSync(path.join(outDir, 'report.html'), 'utf8')).toBe(HTML);
  });
});

describe('dro status', () => {
  it('--list names a torn run record on stderr, skips it and lists the rest', async () => {
    const root = freshRoot();
    const store = new LocalArtifactStore({ root });
    await saveRunRecord(store, runRecord('run-good'));
    await saveRunRecord(store, runRecord('run-torn'));
    const torn = path.join(root, 'records', 'runs', 'run-torn.json');
    writeFileSync(torn, readFileSync(torn, 'utf8').slice(0, 30));

    const listed = dro('status', '--list', '--store', root);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('run-good');
    expect(listed.stdout).not.toContain('run-torn');
    expect(listed.stderr).toContain(`dro status: skipped ${torn} is not a valid record`);
    const gc = dro('gc', '--store', root, '--grace', '0');
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stderr).toContain(`unreadable record ${torn}`);
  });
});

describe('dro run', () => {
  it('SIGTERM stops a local run with a message, exit 143 and a cancelled run record', async () => {
    const dir = tinyExperiment('sigterm');
    const child = spawn(process.execPath, [DRO, 'run', '--config', path.join(dir, 'config.json')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!sent && stderr.includes('"event":"node-started"')) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
    expect(sent, stderr).toBe(true);
    expect(signal).toBeNull();
    expect(code, stderr).toBe(143);
    expect(stderr).toContain('dro run: stopping on SIGTERM');
    expect(stderr).toMatch(/dro run: cancelled/);
    const runs = await listRuns(new LocalArtifactStore({ root: path.join(dir, 'store') }));
    expect(runs.map((r) => r.status)).toEqual(['cancelled']);
  });

  it('a closed stdout and stderr (`dro run 2>&1 | head`) do not kill the run: it ends with its real terminal record', async () => {
    const dir = tinyExperiment('epipe', { overrides: FAST });
    const child = spawn(process.execPath, [DRO, 'run', '--config', path.join(dir, 'config.json')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    // Like `head`: read the first output, then close both pipes while the run goes on.
    await new Promise<void>((resolve) => child.stderr.once('data', () => resolve()));
    child.stdout.destroy();
    child.stderr.destroy();
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    const runs = await listRuns(new LocalArtifactStore({ root: path.join(dir, 'store') }));
    expect([code, runs.map((r) => r.status)]).toEqual([0, ['succeeded']]);
  });

  it('an error a stage plugin throws from a timer is reported like any other error (no stack trace), exit 1', () => {
    const plugin = path.join(tmp, 'timer-plugin.mts');
    writeFileSync(
      plugin,
      `export default { name: 'extract', version: '1', needs: 'model', inputs: ['rendered'], outputs: ['hiddenStates'],
        outputSchemas: { hiddenStates: 'hidden-states/v1' }, parseParams: (raw) => raw ?? {},
        async run() { setTimeout(() => { throw new RangeError('boom from a timer'); }, 10); await new Promise((r) => setTimeout(r, 60_000)); } };\n`,
    );
    const dir = tinyExperiment('uncaught', { overrides: FAST, stages: { extract: plugin } });
    const r = spawnSync(process.execPath, [DRO, 'run', '--config', path.join(dir, 'config.json')], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toContain("dro: RangeError: boom from a timer (thrown outside the command's own work");
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});
