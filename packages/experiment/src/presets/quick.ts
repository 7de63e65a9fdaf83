/**
 * The "quick" preset: the default of `dro run`, sized so the main job finishes on a 2-core CPU (about 11½
 * minutes on Qwen2.5-Coder-0.5B, README "Quickstart"): fewer queries, fewer and shorter samples, refusal
 * labels from one forward pass, fewer training steps. Every value that differs from the paper's protocol
 * (presets/paper.ts, the stages' defaults) is here, with the measurement behind it. The built-in DAGs'
 * params are pinned by test/preset-params.test.ts: a change here changes what `dro run` measures.
 */
import { PAPER_LOGISTIC_OPTIONS } from '@dro/directions';
import { paperPreset } from './paper.ts';
import type { Preset } from './preset.ts';

const paper = paperPreset.params;

/**
 * Data sizes. Training: the first QUICK_TRAIN_PER_LABEL harmful/harmless pairs (every prompt variant);
 * evaluation: the first QUICK_EVAL_PER_LABEL queries of each label of each held-out set, with
 * QUICK_EVAL_SAMPLES samples each. Intervals are over queries, so 25 queries × 2 samples say more than
 * 12 × 4 for the same sampling work (100 vs 96 sampled responses per condition): the Wilson interval of a
 * rate narrows from about ±0.25 to ±0.18, and the paired r(h) shift has twice the queries.
 */
export const QUICK_TRAIN_PER_LABEL = 24;
export const QUICK_EVAL_PER_LABEL = 25;
export const QUICK_EVAL_SAMPLES = 2;

/** Few, short samples: enough to see refusals (the judge reads only the opening) on 2 CPU cores. */
const sampling = {
  ...paper['sampling:train'],
  samples: 4,
  maxNewTokens: { harmful: 40, harmless: 40 },
  // Larger chunks decode more rows per step (inputs × samples), which is what batching pays for.
  chunkSize: 24,
  // The project's phrase list, every sample judged (README "Verdicts: judge modes and selection").
  judge: 'project',
  judgeTopLongest: null,
};

/**
 * The soft-prompt optimiser, for DRO and the prompt-tuning baseline alike: up to 64 training queries (the
 * quick data has 48), batch 16, 4 epochs (12 optimiser steps), and a step size of 0.1 × the initial
 * prompt's RMS per coordinate (lrUnit "prompt-rms": 1.7e-3 on Qwen2.5-0.5B, 1.2e-2 on SmolLM2-135M).
 * Chosen with tools/measure/dro-step-size.ts on both models (2026-11-29, README "Choosing the quick
 * preset"): of lr ∈ {0.025, 0.05, 0.1} × {2, 4} epochs it is the one setting that reaches the training
 * objective on both models with the largest held-out shift on both (Qwen: harmful Δr −1.02 [−1.15, −0.89],
 * harmless +0.13 [0.05, 0.21]; SmolLM2: −0.23 [−0.30, −0.16], +0.24 [0.17, 0.31]); 2 epochs missed it on
 * Qwen at lr 0.025 and 0.05. The former absolute lr 1e-2 — 58 % of Qwen's embedding scale per step —
 * pushed Qwen's harmful queries toward compliance. Everything else is the paper's.
 */
const optimiser = { lr: 0.1, lrUnit: 'prompt-rms', batchSize: 16, epochs: 4, maxQueries: 64 };

export const quickPreset: Preset = {
  // Sampling every training input is most of a run's time on a 2-core CPU; refusal log-probabilities
  // label the refusal boundary from one forward pass per input instead.
  labelSource: 'logprob',
  // Each trained or evaluated prompt costs a training run or a sampling pass: the basic prompt only.
  trainPrompts: 'basic',
  evalPrompts: 'basic',
  // 16 rows: the 192 training inputs are twelve shards of one refusal-logprob chunk each and six of one
  // extract chunk of 32 (a shard rounds up to whole chunks); a held-out set's 50 inputs are shards of 24,
  // 24 and 2 for sampling (chunks of 24) and 16, 16, 16 and 2 for eval-forward. Several shards per worker,
  // because shards are not equal work (rows are grouped by prompt variant, and a chunk pads to its longest
  // row) and the server, not the workflow, picks which waiting shard a free worker gets: bench:scale on
  // SmolLM2 (README "Scaling out") measured two shards of 96 at 26.2 vs 29.6 s (refusal-logprob), and six
  // of 32 at 6.4–12.5 s, where one worker drew 29.9 s of them against the other's 27.2 s (extract: 17.8
  // vs 11.3). A worker loads its model once (pipeline/src/model-cache.ts), so a shard costs only its rows.
  shardSize: 16,
  params: {
    // Rendering is cheap; only the number of queries is cut.
    'data-prep:train': { ...paper['data-prep:train'], limitPerLabel: QUICK_TRAIN_PER_LABEL },
    'data-prep:eval': { ...paper['data-prep:eval'], limitPerLabel: QUICK_EVAL_PER_LABEL },
    'sampling:train': sampling,
    'sampling:eval': { ...sampling, samples: QUICK_EVAL_SAMPLES },
    // refusal-logprob: chunks of 16, one per shard (shardSize above); a whole number of its batches of 8, so
    // the scores are the same as with 32 (checked on Qwen: one digest). extract: chunks of 32 — it
    // groups a chunk's rows by length before batching, so its chunk size changes the batches, and 16 gave
    // other hidden states (another digest) than the 32 the quick preset's results were measured with.
    'refusal-logprob': { ...paper['refusal-logprob'], chunkSize: 16 },
    extract: { ...paper.extract, chunkSize: 32 },
    /**
     * Small data and models that rarely refuse: relative refusal labels (see DirectionsParams.refusalLabels)
     * and a boundary learning rate of 1e-2. With the paper's 1e-4, early stopping (patience 3, min
     * improvement 1e-4) fires within a few epochs on SmolLM2's nearly constant labels and the refusal weights
     * stay at 0, which silently switches off DRO's main loss term.
     */
    directions: {
      ...paper.directions,
      boundary: { ...PAPER_LOGISTIC_OPTIONS, learningRate: 1e-2, maxEpochs: 5000 },
      refusalLabels: 'relative',
    },
    // Ablations here only switch their term off (the quick run trains none by default).
    'dro-train': { ...paper['dro-train'], ...optimiser, ablationWeights: {} },
    'prompt-tuning': {
      ...paper['prompt-tuning'],
      ...optimiser,
      maxResponseTokens: 24,
      samplesPerQuery: 1,
      eosTargets: 'desirable',
      lossAveraging: 'per-response',
      unpromptedNegatives: false,
    },
    // The capability proxy on 16 harmless queries, against 32-token greedy reference answers.
    'reference-answers': { ...paper['reference-answers'], maxNewTokens: 32, maxQueries: 16 },
    'eval-forward': paper['eval-forward'],
    evaluate: { ...paper.evaluate, capabilityQueries: 16 },
    report: paper.report,
  },
};
