/**
 * The "paper" preset: the DRO paper's protocol (Zheng et al., ICML 2024; its official code), where this
 * project offers a choice. The published protocol is what every stage does by default — each stage
 * package documents its defaults where their meaning is (e.g. sampling: n = 25, temperature 1, top-p 0.9,
 * top-k 50, 10..300 new tokens, the 20 longest samples judged by the paper's string matcher; directions:
 * PCA k = 4, logistic boundaries at lr 1e-4 with early stopping; dro-train: AdamW lr 1e-3, batch 50, 40
 * epochs; prompt-tuning: the published baseline) — so this preset takes them as they are. README
 * "Presets and the paper's protocol" lists every value beside the quick preset's.
 */
import { defaultDataPrepParams } from '@dro/data-prep';
import { defaultDirectionsParams } from '@dro/directions';
import { defaultDroParams, defaultPromptTuningParams } from '@dro/dro';
import { defaultEvalForwardParams, defaultEvaluateParams, defaultReferenceParams, defaultReportParams } from '@dro/evaluate';
import { defaultExtractParams } from '@dro/extract';
import { defaultRefusalLogprobParams, defaultSamplingParams } from '@dro/sampling';
import type { Preset } from './preset.ts';

export const paperPreset: Preset = {
  // The paper labels the refusal boundary from sampled responses judged by its string matcher.
  labelSource: 'sampling',
  // The paper trains a soft prompt from each of its basic prompts and evaluates every one.
  trainPrompts: 'every',
  evalPrompts: 'every',
  // 8 = one sampling chunk: sample-train's 800 inputs are 100 shards of ≤ 60 k sampled tokens (8 × 25 × ≤ 300),
  // minutes each at the measured batch-8 decode rate, so a model load per shard costs ~1 % and up to 100
  // workers share the heaviest stage. Stages with larger chunks (64) round it up to one chunk.
  shardSize: 8,
  params: {
    'data-prep:train': defaultDataPrepParams,
    'data-prep:eval': defaultDataPrepParams,
    'sampling:train': defaultSamplingParams,
    'sampling:eval': defaultSamplingParams,
    'refusal-logprob': defaultRefusalLogprobParams,
    extract: defaultExtractParams,
    directions: defaultDirectionsParams,
    'dro-train': defaultDroParams,
    'prompt-tuning': defaultPromptTuningParams,
    'reference-answers': defaultReferenceParams,
    'eval-forward': defaultEvalForwardParams,
    evaluate: defaultEvaluateParams,
    report: defaultReportParams,
  },
};
