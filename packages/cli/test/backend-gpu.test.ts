/**
 * `--backend tensorflow-gpu` runs on a GPU or not at all (issue 17, item 4). What this machine can show is
 * checked for real, never skipped:
 *  - GPU build not installed → one line naming the setup command, exit 1;
 *  - GPU build installed, no GPU visible → one line saying so, exit 1, nothing on stdout (no CPU fallback);
 *  - GPU build installed and a GPU visible → the command runs and `dro llm forward --json` reports the
 *    backend it ran on.
 * DRO_REQUIRE_GPU_BUILD=1 (CI, which builds it) makes a missing GPU build a failure instead of the first case.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTinyHfModel } from '@dro/llm/testing';
import { resolveNativeTfjsNode } from '../../llm/src/native/tfjs-node.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-gpu-cli-'));
const model = writeTinyHfModel(path.join(tmp, 'tiny'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dro(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every line on stderr: TensorFlow's own CUDA probe must not add any (see loadNativeTfjsNode). */
const errorLines = (stderr: string) => stderr.trim().split('\n');

const gpuBuild = resolveNativeTfjsNode('gpu') !== null;
const gpuVisible = gpuBuild && spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).stdout?.includes('GPU') === true;

describe('--backend tensorflow-gpu', () => {
  it('the GPU build is installed where CI asks for it', () => {
    if (process.env.DRO_REQUIRE_GPU_BUILD === '1') expect(gpuBuild, 'DRO_REQUIRE_GPU_BUILD=1 but setup --gpu has not built it').toBe(true);
  });

  it.runIf(!gpuBuild)('without the GPU build: one line naming the setup command, exit 1', () => {
    const r = dro(['llm', 'forward', '--model', model, '--prompt', 'hi', '--backend', 'tensorflow-gpu', '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(errorLines(r.stderr)).toEqual([expect.stringMatching(/tfjs backend "tensorflow-gpu" is not installed: run `node tools\/setup\/setup.mjs --gpu`/)]);
  });

  it.runIf(gpuBuild && !gpuVisible)('with the GPU build on a machine without a GPU: one line, exit 1, no run on the CPU', () => {
    const viaFlag = dro(['llm', 'forward', '--model', model, '--prompt', 'hi', '--backend', 'tensorflow-gpu', '--json']);
    expect(viaFlag.code).toBe(1);
    expect(viaFlag.stdout).toBe('');
    expect(errorLines(viaFlag.stderr)).toEqual([expect.stringMatching(/tfjs backend "tensorflow-gpu": TensorFlow found no GPU on this machine .*it does not fall back to the CPU/)]);
    // The environment variable chooses it the same way.
    const viaEnv = dro(['llm', 'forward', '--model', model, '--prompt', 'hi', '--json'], { DRO_TFJS_BACKEND: 'tensorflow-gpu' });
    expect(viaEnv.code).toBe(1);
    expect(errorLines(viaEnv.stderr)).toEqual([expect.stringMatching(/found no GPU/)]);
  });

  it.runIf(gpuVisible)('with the GPU build and a GPU: it runs, and says which backend ran', () => {
    const r = dro(['llm', 'forward', '--model', model, '--prompt', 'hi', '--backend', 'tensorflow-gpu', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ backend: 'tensorflow-gpu' });
  });
});
