/** `dro llm generate` / `dro llm forward` end to end on a tiny random HF model, plus bad input. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTinyHfModel } from '@dro/llm/testing';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-llm-cli-'));
const model = writeTinyHfModel(path.join(tmp, 'tiny'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dro(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dro llm generate', () => {
  it('prints {"text", "samples"} with --json, reproducibly for a seed', () => {
    const args = ['llm', 'generate', '--model', model, '--prompt', 'hi there', '--samples', '2', '--max-new-tokens', '6', '--seed', '3', '--json'];
    const a = dro(...args);
    expect(a.code, a.stderr).toBe(0);
    const out = JSON.parse(a.stdout);
    expect(out.samples).toHaveLength(2);
    expect(out.text).toBe(out.samples[0]);
    expect(dro(...args).stdout).toBe(a.stdout);
  });

  it('streams greedy text with --temperature 0', () => {
    const r = dro('llm', 'generate', '--model', model, '--prompt', 'hi', '--temperature', '0', '--max-new-tokens', '4');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
  });

  it('fails with a clear message on a missing model or bad options', () => {
    const missing = dro('llm', 'generate', '--model', path.join(tmp, 'nope.gguf'), '--prompt', 'x');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/nope\.gguf/);
    const badTopP = dro('llm', 'generate', '--model', model, '--prompt', 'x', '--top-p', '2');
    expect(badTopP.code).toBe(2);
    expect(badTopP.stderr).toMatch(/--top-p must be in \(0, 1\]/);
    const noPrompt = dro('llm', 'generate', '--model', model);
    expect(noPrompt.code).toBe(2);
    expect(noPrompt.stderr).toMatch(/--prompt/);
  });
});

describe('dro llm generate: requests are bounded', () => {
  it('--samples 100000 fails at once with the request and the memory budget, writing nothing to stdout', () => {
    const r = dro('llm', 'generate', '--model', model, '--prompt', 'hi', '--samples', '100000', '--max-new-tokens', '480', '--json');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/generate: 1 prompt\(s\) × 100000 sample\(s\) × \d+ positions needs at least \d+\.\d GiB \(KV cache .*\), over the memory budget: .* left on the \w+ backend/);
  });

  it('a prompt longer than the model\'s context is refused', () => {
    const r = dro('llm', 'generate', '--model', model, '--prompt', 'word '.repeat(600), '--json');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the prompt has \d+ tokens; the model's context of 512 positions leaves no room to generate/);
  });
});

describe('dro llm forward', () => {
  it('reports the top-10 next tokens and the final hidden state', () => {
    const r = dro('llm', 'forward', '--model', model, '--prompt', 'hi there', '--system', 'Be brief.', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.top).toHaveLength(10);
    const logits = out.top.map((t: { logit: number }) => t.logit);
    expect([...logits].sort((a, b) => b - a)).toEqual(logits);
    expect(out.hiddenFirst8).toHaveLength(8);
    expect(out.hiddenNorm).toBeGreaterThan(0);
    expect(['wasm', 'tensorflow']).toContain(out.backend);
  });
});
