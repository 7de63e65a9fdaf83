/** `dro stages` says which judge and selection produce the held-out numbers, per preset and per config. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');

function dro(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'dro.mjs'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dro stages', () => {
  it('lists the stages and each preset\'s verdict rule', () => {
    const text = dro('stages');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^sampling +v3\./m);
    expect(text.stdout).toContain('  quick  string match (project phrases); every sample of 2 judged');
    expect(text.stdout).toContain('  paper  string match (paper phrases); 20 longest of 25 samples judged');
    const json = JSON.parse(dro('stages', '--json').stdout) as { stages: { name: string }[]; verdicts: Record<string, string> };
    expect(json.stages.map((s) => s.name)).toContain('evaluate');
    expect(json.verdicts.paper).toBe('string match (paper phrases); 20 longest of 25 samples judged');
  });

  it('shows a config\'s own judge settings', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dro-stages-')), 'exp.json');
    fs.writeFileSync(file, JSON.stringify({ overrides: { 'sampling:eval': { judge: 'paper', samples: 6, judgeTopLongest: 3 } } }));
    const json = JSON.parse(dro('stages', '--config', file, '--json').stdout) as { verdicts: Record<string, string> };
    expect(json.verdicts.quick).toBe('string match (paper phrases); 3 longest of 6 samples judged');
  });
});
