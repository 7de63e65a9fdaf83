/**
 * What a config makes impossible is rejected before any stage runs: preparing the experiment (import, DAG)
 * fails with a message naming the cause, and nothing has run (no run record in the store).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { writeTinyGgufModel } from '@dro/llm/testing';
import { defaultConfig, prepareExperiment, validateConfig } from '../src/index.ts';

const repoData = path.resolve(import.meta.dirname, '..', '..', '..', 'data');

function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-preflight-'));
  const rows = fs.readFileSync(path.join(repoData, 'queries', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string });
  const write = (name: string, rs: unknown[]) => (fs.writeFileSync(path.join(dir, name), rs.map((r) => JSON.stringify(r)).join('\n') + '\n'), path.join(dir, name));
  const both = write('train.jsonl', [...rows.filter((r) => r.label === 'harmful').slice(0, 4), ...rows.filter((r) => r.label === 'harmless').slice(0, 4)]);
  const harmfulOnly = write('harmful-train.jsonl', rows.filter((r) => r.label === 'harmful').slice(0, 4));
  const heldout = write('heldout.jsonl', [...rows.filter((r) => r.label === 'harmful').slice(4, 6), ...rows.filter((r) => r.label === 'harmless').slice(4, 6)]);
  const model = writeTinyGgufModel(path.join(dir, 'tiny.gguf'), 'F32');
  const d = defaultConfig();
  const config = (extra: Record<string, unknown>) =>
    validateConfig(
      {
        models: [{ id: 'tiny', path: model }],
        queries: { train: both, eval: [heldout] },
        prompts: { default: d.prompts.default, short: d.prompts.short },
        store: path.join(dir, 'store'),
        ...extra,
      },
      path.join(dir, 'config.json'),
      dir,
    );
  return { dir, heldout, harmfulOnly, config };
}

describe('preflight: impossible configs fail before any stage runs', () => {
  it.each([
    ['a training set with one label', (s: ReturnType<typeof setup>) => ({ queries: { train: s.harmfulOnly, eval: [s.heldout] } }), /queries\.train \(.*harmful-train\.jsonl\): no harmless queries/],
    ['a sets override naming a set a node does not hold', () => ({ overrides: { sampling: { sets: ['train'] } }, labelSource: 'sampling' }), /node "sample-eval-none@tiny": params\.sets names "train", but its inputs hold only the query set\(s\) heldout/],
    ['a train prompt left out of the training inputs', () => ({ trainPrompts: ['short'], overrides: { 'data-prep:train': { promptVariants: ['none', 'default'] } } }), /promptVariants \["none","default"\] leave out "short", which training needs/],
    ['the baseline\'s unprompted negatives without "none" rendered', () => ({ preset: 'paper', baselines: { promptTuning: true }, overrides: { 'data-prep:train': { promptVariants: ['default', 'short'] } } }), /leave out "none".*unpromptedNegatives/],
    ['an LLM judge model that does not exist', () => ({ overrides: { 'sampling:eval': { llmJudge: { model: '/nonexistent/guard.gguf' } } } }), /sampling:eval llmJudge\.model: expected "self" or an existing model/],
    ['prompt tuning without sampled labels', () => ({ labelSource: 'logprob', baselines: { promptTuning: true } }), /baselines\.promptTuning needs labelSource "sampling"/],
  ])('%s', async (_name, extra, message) => {
    const s = setup();
    const err = await prepareExperiment(s.config(extra(s))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadInputError);
    expect((err as Error).message).toMatch(message);
    // Nothing ran: no run was recorded.
    expect(fs.existsSync(path.join(s.dir, 'store', 'records', 'runs'))).toBe(false);
  });

  it('a bad stage param is rejected by DAG validation, before the runner starts anything', async () => {
    const s = setup();
    // checkExperiment validates every node's params before prepareExperiment imports anything.
    await expect(prepareExperiment(s.config({ overrides: { 'sampling:eval': { judge: 'strict' } } }))).rejects.toThrow(
      /node "sample-eval-none@tiny" params: sampling params: judge: expected one of "project", "paper"/,
    );
  });

  it('rejects bad trainPrompts in the config, naming the field', () => {
    const s = setup();
    expect(() => s.config({ trainPrompts: ['missing'] })).toThrow(/field "trainPrompts": expected a non-empty array of distinct prompt ids/);
    expect(() => s.config({ trainPrompts: ['short', 'short'] })).toThrow(/field "trainPrompts"/);
    expect(() => s.config({ trainPrompts: [] })).toThrow(/field "trainPrompts"/);
  });
});
