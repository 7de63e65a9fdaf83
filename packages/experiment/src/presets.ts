/**
 * Stage params for an experiment: the preset's params for each DAG role, then the config's overrides.
 *
 * A role is a stage name, or "stage:role" where one stage plays two parts with different presets
 * ("sampling:train" labels the training set, "sampling:eval" evaluates held-out sets). Overrides keyed by
 * the plain stage name apply to every role of that stage; those keyed by the role apply after them.
 *
 * The "paper" preset is the paper's protocol; "quick" shrinks the work so `dro run` finishes on a 2-core
 * CPU: fewer queries, fewer and shorter samples, fewer training steps.
 */
import { paperDataPrepParams, quickDataPrepParams } from '@dro/data-prep';
import { paperDirectionsParams, quickDirectionsParams } from '@dro/directions';
import { paperDroParams, paperPromptTuningParams, quickDroParams, quickPromptTuningParams } from '@dro/dro';
import {
  paperEvaluateParams,
  paperReferenceParams,
  paperReportParams,
  quickEvaluateParams,
  quickReferenceParams,
  quickReportParams,
} from '@dro/evaluate';
import { paperExtractParams, quickExtractParams } from '@dro/extract';
import { describeVerdict, paperRefusalLogprobParams, paperSamplingParams, parseSamplingParams, quickRefusalLogprobParams, quickSamplingParams } from '@dro/sampling';
import type { ExperimentConfig, PresetName } from './config.ts';

/**
 * Quick-preset data sizes. Training: the first QUICK_TRAIN_PER_LABEL harmful/harmless pairs (every prompt
 * variant); evaluation: the first QUICK_EVAL_PER_LABEL queries of each label of each held-out set, with
 * QUICK_EVAL_SAMPLES samples each. Intervals are over queries, so 25 queries × 2 samples say more than
 * 12 × 4 for the same sampling work (100 vs 96 sampled responses per condition): the Wilson interval of a
 * rate narrows from about ±0.25 to ±0.18, and the paired r(h) shift has twice the queries.
 */
export const QUICK_TRAIN_PER_LABEL = 24;
export const QUICK_EVAL_PER_LABEL = 25;
export const QUICK_EVAL_SAMPLES = 2;

/**
 * Rows per shard of a row-parallel node (config `shardSize` overrides). quick: 96 cuts the 192 training
 * inputs into two shards of whole chunks (4 sampling chunks of 24; with chunks of 32 also for
 * refusal-logprob and extract), one per worker of a 2-worker cluster; each shard's work (8–16 s of the
 * measured 17 s extraction and 32 s refusal log-probs, README Performance) still dwarfs its model load.
 * paper: 8 = one sampling chunk, so sample-train's 800 inputs are 100 shards of ~60 k sampled tokens
 * (8 × 25 × ≤ 300), ~7 min each at the measured batch-8 decode rate: a model load per shard costs ~1 %, and
 * up to 100 workers share the heaviest stage. Stages with larger chunks (64) round it up to one chunk.
 */
export const PRESET_SHARD_SIZE: Record<PresetName, number> = { quick: 96, paper: 8 };

/** The config's shard size (its own, else the preset's); null = no sharding. */
export function shardSizeOf(config: ExperimentConfig): number | null {
  return config.shardSize === undefined ? PRESET_SHARD_SIZE[config.preset] : config.shardSize;
}

type Params = Record<string, unknown>;

const PRESETS: Record<string, Record<PresetName, Params>> = {
  'data-prep:train': { paper: { ...paperDataPrepParams }, quick: { ...quickDataPrepParams, limitPerLabel: QUICK_TRAIN_PER_LABEL } },
  'data-prep:eval': { paper: { ...paperDataPrepParams }, quick: { ...quickDataPrepParams, limitPerLabel: QUICK_EVAL_PER_LABEL } },
  'sampling:train': { paper: { ...paperSamplingParams }, quick: { ...quickSamplingParams } },
  'sampling:eval': { paper: { ...paperSamplingParams }, quick: { ...quickSamplingParams, samples: QUICK_EVAL_SAMPLES } },
  'refusal-logprob': { paper: { ...paperRefusalLogprobParams }, quick: { ...quickRefusalLogprobParams } },
  extract: { paper: { ...paperExtractParams }, quick: { ...quickExtractParams } },
  directions: { paper: { ...paperDirectionsParams }, quick: { ...quickDirectionsParams } },
  'dro-train': { paper: { ...paperDroParams }, quick: { ...quickDroParams } },
  'prompt-tuning': { paper: { ...paperPromptTuningParams }, quick: { ...quickPromptTuningParams } },
  'reference-answers': { paper: { ...paperReferenceParams }, quick: { ...quickReferenceParams } },
  evaluate: { paper: { ...paperEvaluateParams }, quick: { ...quickEvaluateParams } },
  report: { paper: { ...paperReportParams }, quick: { ...quickReportParams } },
};

/** Every role a config's overrides may name. */
export const PARAM_ROLES = [...Object.keys(PRESETS), ...new Set(Object.keys(PRESETS).map((r) => r.split(':')[0]!))];

function isPlainObject(v: unknown): v is Params {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge of plain objects; arrays and scalars in `over` replace. */
export function mergeParams(base: Params, over: Params): Params {
  const outParams: Params = { ...base };
  for (const [k, v] of Object.entries(over)) {
    outParams[k] = isPlainObject(v) && isPlainObject(base[k]) ? mergeParams(base[k] as Params, v) : structuredClone(v);
  }
  return outParams;
}

/** Params of one DAG role: preset, then overrides by stage, then by role, then the DAG's own fields. */
export function stageParams(config: ExperimentConfig, role: string, extra: Params = {}): Params {
  const preset = PRESETS[role];
  if (!preset) throw new Error(`no preset for DAG role "${role}"`);
  const stage = role.split(':')[0]!;
  let params = structuredClone(preset[config.preset]);
  if (stage !== role && config.overrides[stage]) params = mergeParams(params, config.overrides[stage]!);
  if (config.overrides[role]) params = mergeParams(params, config.overrides[role]!);
  return mergeParams(params, extra);
}

/** Which judge and selection produce a config's held-out numbers (its "sampling:eval" params), in words. */
export function heldOutVerdict(config: ExperimentConfig): string {
  return describeVerdict(parseSamplingParams(stageParams(config, 'sampling:eval')));
}
