/**
 * `dro stages --config FILE [--json]` as a user runs it (`bin/dro.mjs` in a child process): the config's
 * stage plugin is listed in place of the built-in with its source and identity; a plugin that does not
 * fit fails the command, naming the config field, the module and the field.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '..', '..', '..');
const DRO = path.join(repoRoot, 'bin', 'dro.mjs');
const plugin = path.join(repoRoot, 'examples', 'stage-plugin', 'middle-layer-extract.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-stages-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dro(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const out = spawnSync(process.execPath, [DRO, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: out.status, stdout: out.stdout, stderr: out.stderr };
}

function config(name: string, stages: Record<string, string>): string {
  const file = path.join(tmp, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ name, stages }));
  return file;
}

describe('dro stages --config', () => {
  it('lists the plugin in place of the built-in stage, with its source, identity and version', () => {
    const file = config('middle', { extract: plugin });
    const json = dro('stages', '--config', file, '--json');
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const { stages } = JSON.parse(json.stdout) as { stages: Array<{ name: string; source: string; identity: string | null; version: string; needs: string }> };
    const identity = `sha256:${crypto.createHash('sha256').update(fs.readFileSync(plugin)).digest('hex')}`;
    expect(stages.find((s) => s.name === 'extract')).toMatchObject({ source: plugin, identity, version: '1', needs: 'model' });
    expect(stages.find((s) => s.name === 'directions')).toMatchObject({ source: 'built-in', identity: null, needs: 'cpu' });

    const text = dro('stages', '--config', file);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^stage +ver +needs +inputs → outputs +\[source\]$/m);
    expect(text.stdout).toMatch(new RegExp(`^extract +v1 +model +rendered → hiddenStates +\\[${plugin.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(${identity.slice(0, 19)}\\)\\]$`, 'm'));
    expect(dro('stages').stdout).toMatch(/^extract +v1 +model +rendered → hiddenStates +\[built-in\]$/m);
  });

  it('fails on a plugin that does not fit, naming the config field, the module and the field', () => {
    const bad = path.join(tmp, 'cpu-extract.mts');
    fs.writeFileSync(bad, fs.readFileSync(plugin, 'utf8').replace("needs: 'model',", "needs: 'cpu',"));
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(tmp, 'node_modules'));
    const out = dro('stages', '--config', config('bad', { extract: bad }), '--json');
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain(`config field "stages.extract": stage plugin ${bad}: field "needs": expected "model"`);
  });
});
