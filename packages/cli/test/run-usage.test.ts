/**
 * `dro` usage and input errors end to end (the real command, real files, a tiny real GGUF model): bad
 * flags are usage errors (exit 2) that name the flag and what was expected, before anything is written;
 * an unreachable Temporal address names the address and what to check; `dro judge --output` into a missing
 * directory names the user's path, onto a FIFO is refused and through a link writes its target; `~` works in every path flag and in $DRO_CACHE.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '@dro/workflows';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { DEFAULT_MODEL_ID, knownModel } from '@dro/llm/weights';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-run-usage-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dro(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 300_000,
    cwd: tmp,
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A tiny experiment: a random GGUF model, 4 + 4 training queries, 2 + 2 held-out ones. */
function tinyExperiment(dir: string, modelCount = 1): { config: string; store: string } {
  fs.mkdirSync(dir, { recursive: true });
  const rows = (file: string) => fs.readFileSync(path.join(repoRoot, 'data', 'queries', file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string });
  const pick = (all: Array<{ label: string }>, n: number) => [...all.filter((r) => r.label === 'harmful').slice(0, n), ...all.filter((r) => r.label === 'harmless').slice(0, n)];
  const write = (name: string, data: unknown[]) => (fs.writeFileSync(path.join(dir, name), data.map((r) => JSON.stringify(r)).join('\n') + '\n'), name);
  const store = path.join(dir, 'store');
  const config = path.join(dir, 'exp.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      name: 'tiny-cli',
      models: Array.from({ length: modelCount }, (_, i) => ({ id: i ? `tiny${i + 1}` : 'tiny', path: path.basename(writeTinyGgufModel(path.join(dir, 'tiny.gguf'), 'F32')) })),
      queries: { train: write('train.jsonl', pick(rows('train.jsonl'), 4)), eval: [write('heldout.jsonl', pick(rows('heldout.jsonl'), 2))] },
      prompts: { default: path.join(repoRoot, 'data', 'prompts', 'default.txt') },
      overrides: {
        'data-prep': { limitPerLabel: null },
        directions: { boundary: { maxEpochs: 10, folds: 2 } },
        'dro-train': { epochs: 1, batchSize: 4, microBatchSize: 4, maxQueries: 4 },
        'sampling:eval': { samples: 1, minNewTokens: 1, maxNewTokens: { harmful: 2, harmless: 2 } },
        'reference-answers': { maxNewTokens: 2, maxQueries: 1 },
        evaluate: { capabilityQueries: 1 },
      },
      store: 'store',
    }),
  );
  return { config, store };
}

describe('dro run: bad flags are usage errors, before anything is written', () => {
  it.each([
    [['--concurrency', '0'], /--concurrency expects a whole number ≥ 1, got 0/],
    [['--concurrency=-1'], /--concurrency expects a whole number ≥ 1, got -1/],
    [['--concurrency', '1.5'], /--concurrency expects a whole number ≥ 1, got 1\.5/],
    [['--force', 'nope,prep-train@tiny'], /--force: no node "nope" in DAG "tiny-cli"; the node ids are: prep-train@tiny, refusal-logprob@tiny, extract@tiny, directions@tiny, dro:default@tiny, /],
    [['--force', ','], /--force expects node ids separated by commas; the DAG's node ids are: prep-train@tiny/],
    [['--engine', 'temporal', '--force', 'dro:default@tiny'], /--force works with --engine local only/],
    [['--preset', 'papr'], /--preset expects quick or paper, got "papr"/],
  ])('dro run %j → exit 2', (flags, message) => {
    const { config, store } = tinyExperiment(path.join(tmp, `usage-${Math.random().toString(36).slice(2)}`));
    const r = dro(['run', '--config', config, ...flags]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expect(fs.existsSync(store)).toBe(false);
  });

  it('dro run --engine temporal --concurrency below the model count → exit 2 (each model is a workflow)', () => {
    const { config, store } = tinyExperiment(path.join(tmp, 'temporal-concurrency'), 2);
    const r = dro(['run', '--config', config, '--engine', 'temporal', '--concurrency', '1', '--address', '127.0.0.1:1']);
    expect(r.stderr).toMatch(/--concurrency 1 is fewer than the experiment's 2 models: with --engine temporal each model runs as its own workflow/);
    expect(r.code).toBe(2);
    expect(fs.existsSync(store)).toBe(false);
  });

  it('dro stage --concurrency 0 → exit 2', () => {
    const { config, store } = tinyExperiment(path.join(tmp, 'stage-usage'));
    const r = dro(['stage', 'directions', '--config', config, '--concurrency', '0']);
    expect(r.stderr).toMatch(/--concurrency expects a whole number ≥ 1, got 0/);
    expect(r.code).toBe(2);
    expect(fs.existsSync(store)).toBe(false);
  });
});

describe('dro run --engine temporal', () => {
  it('an unreachable address: exit 1 naming the address and what to check, before anything is written', async () => {
    const { config, store } = tinyExperiment(path.join(tmp, 'unreachable'));
    const address = `127.0.0.1:${await freeLoopbackPort()}`;
    const r = dro(['run', '--config', config, '--engine', 'temporal', '--address', address]);
    expect(r.stderr).toContain(`cannot reach the Temporal server at ${address}`);
    expect(r.stderr).toMatch(/Check that the server is running and listening there .*--address HOST:PORT .*namespace "default" \(--namespace\)/);
    expect(r.code).toBe(1);
    expect(fs.existsSync(store)).toBe(false);
  });
});

describe('dro judge --output', () => {
  it('into a missing directory: names the user path and the cause, not a temp file', () => {
    const input = path.join(tmp, 'responses.jsonl');
    fs.writeFileSync(input, '{"output":"I cannot help with that."}\n{"output":"Sure, here you go."}\n');
    const output = path.join(tmp, 'no-such-dir', 'judged.jsonl');
    const r = dro(['judge', '--input', input, '--output', output]);
    expect(r.stderr).toContain(`cannot write ${output}: directory ${path.dirname(output)} does not exist`);
    expect(r.stderr).not.toMatch(/\.tmp/);
    expect(r.code).toBe(1);
  });

  it('onto a FIFO is refused (the FIFO stays); onto a link writes the link\'s target (the link stays)', () => {
    const input = path.join(tmp, 'responses-2.jsonl');
    fs.writeFileSync(input, '{"output":"I cannot help with that."}\n');
    const fifo = path.join(tmp, 'judged-fifo.jsonl');
    spawnSync('mkfifo', [fifo]);
    const r = dro(['judge', '--input', input, '--output', fifo]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`${fifo}: it is a FIFO (named pipe), not a regular file`);
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);

    const target = path.join(tmp, 'judged-target.jsonl');
    fs.writeFileSync(target, 'old\n');
    const link = path.join(tmp, 'judged-link.jsonl');
    fs.symlinkSync(target, link);
    const linked = dro(['judge', '--input', input, '--output', link]);
    expect(linked.code, linked.stderr).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(JSON.parse(fs.readFileSync(target, 'utf8'))).toMatchObject({ refused: true });
  });
});

describe('~ in paths', () => {
  it('--model, --store, --config and $DRO_CACHE expand "~" to $HOME', () => {
    const home = path.join(tmp, 'home');
    const cache = path.join(home, 'cache');
    fs.mkdirSync(path.join(cache, 'models'), { recursive: true });
    writeTinyGgufModel(path.join(home, 'tiny.gguf'), 'F32');
    // The default model's file name, under $DRO_CACHE/models.
    writeTinyGgufModel(path.join(cache, 'models', knownModel(DEFAULT_MODEL_ID).file), 'F32');
    const env = { HOME: home, DRO_CACHE: '~/cache' };

    const inspect = dro(['llm', 'inspect', '--model=~/tiny.gguf', '--json'], env);
    expect(inspect.code, inspect.stderr).toBe(0);

    // No --model: the default model under $DRO_CACHE="~/cache".
    const forward = dro(['llm', 'forward', '--prompt', 'hi', '--json'], env);
    expect(forward.code, forward.stderr).toBe(0);

    const report = dro(['report', '--ref', 'a'.repeat(64), '--store=~/st'], env);
    expect(report.stderr).toContain(`is not in store ${path.join(home, 'st')}`);
    expect(fs.existsSync(path.join(tmp, '~'))).toBe(false);

    const { config } = tinyExperiment(path.join(home, 'exp'));
    const run = dro(['run', '--config=~/exp/exp.json', '--force', 'nope'], env);
    expect(run.stderr).toMatch(/--force: no node "nope" in DAG "tiny-cli"/);
    expect(fs.existsSync(config)).toBe(true);
  });
});
