import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig, resolveConfig } from '../src/config.ts';

function writeConfig(obj: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-config-'));
  const file = path.join(dir, 'exp.json');
  fs.writeFileSync(file, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return file;
}

describe('experiment config', () => {
  it('the embedded default points at the project data', () => {
    const c = defaultConfig();
    expect(fs.existsSync(c.queries.train)).toBe(true);
    for (const p of Object.values(c.prompts)) expect(fs.existsSync(p)).toBe(true);
    expect(c.basicPrompt in c.prompts).toBe(true);
  });

  it('fills missing fields from the default and resolves relative paths against the file', () => {
    const d = defaultConfig();
    const file = writeConfig({ name: 'exp1', preset: 'paper', prompts: { p: d.prompts.short } });
    const c = resolveConfig(file);
    expect(c.name).toBe('exp1');
    expect(c.preset).toBe('paper');
    expect(c.basicPrompt).toBe('p');
    expect(c.queries.train).toBe(d.queries.train);
  });

  it.each([
    [{ preset: 'fast' }, 'field "preset": expected "quick" or "paper"'],
    [{ models: [] }, 'field "models": expected a non-empty array'],
    [{ models: [{ id: 'm', path: '/nonexistent/model.gguf' }] }, 'field "models[0].path": expected an existing file'],
    [{ queries: { train: 'missing.jsonl' } }, 'field "queries.train": expected an existing file'],
    [{ basicPrompt: 'nope' }, 'field "basicPrompt": expected one of the prompt ids'],
    [{ labelSource: 'vibes' }, 'field "labelSource"'],
    [{ baselines: { ablations: ['no-everything'] } }, 'field "baselines.ablations"'],
    [{ overrides: { sampling: 3 } }, 'field "overrides.sampling"'],
    [{ colour: 'blue' }, 'field "colour"'],
    [{ queries: { eval: [{ file: 'x.txt' }] } }, 'field "queries.eval[0].label": expected "harmful" or "harmless"'],
    [{ overrides: { samplnig: {} } }, 'field "overrides.samplnig": expected a stage or role name'],
    [{ stages: ['./judge.ts'] }, 'field "stages": expected an object { builtInStage: "module path or package name" }'],
    [{ stages: { extrct: './x.ts' } }, 'field "stages.extrct": expected a built-in stage name (data-prep, sampling'],
    [{ stages: { extract: 3 } }, 'field "stages.extract": expected a non-empty string, got 3'],
    [{ stages: { extract: './missing-plugin.ts' } }, 'field "stages.extract": expected an existing file or directory'],
  ])('rejects %j naming the field', (raw, message) => {
    const file = writeConfig(raw);
    expect(() => resolveConfig(file)).toThrow(message);
    expect(() => resolveConfig(file)).toThrow(file);
  });

  it('takes eval sets as paths or { file, label }', () => {
    const d = defaultConfig();
    const file = writeConfig({ queries: { eval: [d.queries.eval[0], { file: d.queries.train, label: 'harmful' }] } });
    const c = resolveConfig(file);
    expect(c.queries.eval[1]).toEqual({ file: d.queries.train, label: 'harmful' });
  });

  it('takes stage plugins as paths (resolved against the file) or package names (resolved from its directory)', () => {
    const file = writeConfig({ stages: { extract: './middle.ts', sampling: '@lab/judge' } });
    fs.writeFileSync(path.join(path.dirname(file), 'middle.ts'), 'export default {};\n');
    expect(resolveConfig(file).stages).toEqual({
      extract: { module: path.join(path.dirname(file), 'middle.ts') },
      sampling: { module: '@lab/judge', resolveFrom: path.dirname(file) },
    });
    expect(defaultConfig().stages).toEqual({});
  });

  it('takes the preset from the command line over the file, and rejects one that is not a preset', () => {
    expect(resolveConfig(writeConfig({ preset: 'quick' }), 'paper').preset).toBe('paper');
    expect(resolveConfig(undefined, 'paper').labelSource).toBe('sampling');
    expect(resolveConfig(writeConfig({ labelSource: 'logprob' }), 'paper').labelSource).toBe('logprob');
    expect(() => resolveConfig(undefined, 'papr' as never)).toThrow('--preset: expected "quick" or "paper", got "papr"');
  });

  it('rejects a file that is not JSON, naming the file', () => {
    const file = writeConfig('{ not json');
    expect(() => resolveConfig(file)).toThrow(/exp\.json: not valid JSON/);
  });

  it('expands "~" in every path of a config, and in the config path itself', () => {
    const savedHome = process.env.HOME;
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-home-'));
    try {
      process.env.HOME = home;
      const d = defaultConfig();
      fs.mkdirSync(path.join(home, 'data'));
      fs.copyFileSync(d.queries.train, path.join(home, 'data', 'train.jsonl'));
      fs.copyFileSync(d.prompts.short, path.join(home, 'data', 'short.txt'));
      fs.writeFileSync(path.join(home, 'model.gguf'), 'opened later');
      fs.writeFileSync(
        path.join(home, 'exp.json'),
        JSON.stringify({
          models: [{ id: 'm', path: '~/model.gguf' }],
          queries: { train: '~/data/train.jsonl', eval: [{ file: '~/data/train.jsonl', label: 'harmful' }] },
          prompts: { short: '~/data/short.txt' },
          store: '~/dro-store',
          overrides: { 'sampling:eval': { llmJudge: { model: '~/model.gguf' } }, sampling: { llmJudge: { model: 'self' } } },
        }),
      );
      const c = resolveConfig('~/exp.json');
      // The LLM judge's model is a user path too (and "self" stays the sampled model).
      expect((c.overrides['sampling:eval']!.llmJudge as { model: string }).model).toBe(path.join(home, 'model.gguf'));
      expect((c.overrides.sampling!.llmJudge as { model: string }).model).toBe('self');
      expect(c.models[0]!.path).toBe(path.join(home, 'model.gguf'));
      expect(c.queries.train).toBe(path.join(home, 'data', 'train.jsonl'));
      expect(c.queries.eval[0]).toEqual({ file: path.join(home, 'data', 'train.jsonl'), label: 'harmful' });
      expect(c.prompts.short).toBe(path.join(home, 'data', 'short.txt'));
      expect(c.store).toBe(path.join(home, 'dro-store'));
    } finally {
      process.env.HOME = savedHome;
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it('store: a directory resolves against the config file, an s3:// URI is kept as written, other URIs are refused', () => {
    const local = writeConfig({ store: 'runs/store' });
    expect(resolveConfig(local).store).toBe(path.join(path.dirname(local), 'runs', 'store'));
    expect(resolveConfig(writeConfig({ store: 's3://dro-artifacts/team/exp/' })).store).toBe('s3://dro-artifacts/team/exp');
    expect(() => resolveConfig(writeConfig({ store: 's3://Bad_Bucket/x' }))).toThrow(/field "store": expected a directory or an s3:\/\/bucket\/prefix URI \(.*bucket "Bad_Bucket" is not a valid S3 bucket name/);
    expect(() => resolveConfig(writeConfig({ store: 'gs://bucket/x' }))).toThrow(/field "store": expected a directory or an s3:\/\/bucket\/prefix URI/);
  });

  it('reads allowOverlap (default false) and rejects a non-boolean', () => {
    expect(resolveConfig(writeConfig({})).allowOverlap).toBe(false);
    expect(resolveConfig(writeConfig({ allowOverlap: true })).allowOverlap).toBe(true);
    expect(() => resolveConfig(writeConfig({ allowOverlap: 'yes' }))).toThrow('field "allowOverlap": expected true or false, got "yes"');
  });

  it('rejects a config file that is not UTF-8, naming the line', () => {
    const file = writeConfig('');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('{\n  "name": "caf'), Buffer.from([0xe9]), Buffer.from('"\n}\n')]));
    expect(() => resolveConfig(file)).toThrow(/exp\.json:2: not valid UTF-8 \(byte 0xe9 at byte 15 of line 2\)/);
  });
});
