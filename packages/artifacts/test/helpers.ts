import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defineJsonSchema } from '../src/index.ts';

/** Run a python3 snippet (CI's python3 has numpy, pyarrow, safetensors) and return its stdout. */
export function runPython(script: string, args: string[] = []): string {
  const result = spawnSync('python3', ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`python3 failed (exit ${result.status}):\n${result.stderr}`);
  return result.stdout;
}

/** A fresh temp directory, removed by the returned cleanup. */
export function makeTempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `dro-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random numbers (mulberry32) so test data differs per seed but not per run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Start `script` (TypeScript) in a child node process through tsx, stdout/stderr piped; `env` replaces the environment. */
const liveChildren = new Set<ChildProcess>();

export function spawnTsx(script: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

/** SIGKILL every child still running (a failed or timed-out test must not leave writers behind). */
export function killLiveChildren(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
}

/** Resolve when the child prints a line matching `pattern` (rejects if it exits first). */
export function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        child.stdout!.off('data', onData);
        resolve(line);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before printing ${pattern}:\n${stderr}`)));
  });
}

/** Wait for the child to exit; returns its exit code and signal plus everything it printed. */
export function waitForExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
    else child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A small JSON schema (`test-labels/v1`) the store tests write; importing this module registers it. */
export interface Labels {
  labels: { id: string; refused: boolean }[];
}
defineJsonSchema<Labels>({
  name: 'test-labels/v1',
  validate(value) {
    const problems: string[] = [];
    const labels = (value as Labels)?.labels;
    if (!Array.isArray(labels)) return ['labels: expected an array'];
    labels.forEach((label, i) => {
      if (typeof label?.id !== 'string') problems.push(`labels[${i}].id: expected a string`);
      if (typeof label?.refused !== 'boolean') problems.push(`labels[${i}].refused: expected a boolean`);
    });
    return problems;
  },
});
