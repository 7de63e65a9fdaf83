/**
 * Parameters of the dro-train and prompt-tuning stages: their defaults (the published protocol) and their
 * validation (errors name the field). The presets are experiment/src/presets/.
 */
import { DEFAULT_OBJECTIVE_MIN_SHARE } from '@dro/artifacts';
import { ParamReader } from '@dro/pipeline';
import { PAPER_LOSS_WEIGHTS, type LossWeights } from './loss.ts';
import { LR_UNITS, type OptimiserOptions } from './soft-prompt-training.ts';

/** The full method and its ablations (each switches one loss term off). */
export const DRO_VARIANTS = ['dro', 'no-norm', 'no-refusal', 'no-harmfulness'] as const;
export type DroVariant = (typeof DRO_VARIANTS)[number];
export type Ablation = Exclude<DroVariant, 'dro'>;

/** The loss term each ablation switches off. */
const ABLATED_TERM: Record<Ablation, keyof LossWeights> = { 'no-norm': 'norm', 'no-refusal': 'refusal', 'no-harmfulness': 'harmfulness' };

export interface CommonTrainParams extends OptimiserOptions {
  /** The basic safety prompt the soft prompt starts from (rows of rendered-inputs with this prompt_id). */
  promptId: string;
  /** Train on rows of these query sets only; empty = every row with promptId. */
  sets: string[];
  /** Use at most this many training queries (half harmful, half harmless, seeded); null = all. */
  maxQueries: number | null;
  /** Nearest vocabulary tokens reported per soft-prompt position. */
  nearestTokens: number;
}

export interface DroTrainParams extends CommonTrainParams {
  variant: DroVariant;
  /** Term weights before the variant switches one off (paper: 1, 1e-2, 1e-3). */
  lossWeights: LossWeights;
  /**
   * Weights an ablation sets besides switching its term off. The published ablations: without the refusal
   * term the harmfulness term's weight becomes 1 (`{ "no-refusal": { "harmfulness": 1 } }`); without the
   * harmfulness term it is refusal + 1e-3·norm, without the norm term refusal + 1e-2·harmfulness (the
   * lossWeights as they are). {} = every ablation only zeroes its term.
   */
  ablationWeights: Partial<Record<Ablation, Partial<LossWeights>>>;
  /**
   * The training objective's bar (see trainingObjective in @dro/artifacts): the share of each label's
   * training queries that must move the intended way. Recorded in the manifest and the report; a prompt
   * that misses it is flagged, not presented as a result.
   */
  objectiveMinShare: number;
}

/** The weights actually used: the variant's own weights over lossWeights, its term set to 0. */
export function effectiveWeights(p: Pick<DroTrainParams, 'variant' | 'lossWeights' | 'ablationWeights'>): LossWeights {
  if (p.variant === 'dro') return { ...p.lossWeights };
  return { ...p.lossWeights, ...p.ablationWeights[p.variant], [ABLATED_TERM[p.variant]]: 0 };
}

/**
 * What dro-train does when given no params: the paper's protocol — AdamW lr 1e-3, wd 0.01, clip 1.0, batch 50,
 * 40 epochs over seeded shuffles (presets: experiment/src/presets/).
 */
export const defaultDroParams: Omit<DroTrainParams, 'promptId'> = {
  variant: 'dro',
  lossWeights: { ...PAPER_LOSS_WEIGHTS },
  ablationWeights: { 'no-refusal': { harmfulness: 1 } },
  objectiveMinShare: DEFAULT_OBJECTIVE_MIN_SHARE,
  lr: 1e-3,
  lrUnit: 'absolute',
  weightDecay: 0.01,
  maxGradNorm: 1.0,
  batchSize: 50,
  // Bounded by the wasm backend's memory (~2 GB): 8 SmolLM2 sequences of ~110 tokens overflow it.
  microBatchSize: 4,
  epochs: 40,
  maxSteps: null,
  seed: 42,
  sets: [],
  maxQueries: null,
  nearestTokens: 5,
};

/** Fields shared by DRO and prompt tuning. */
export function readCommon(r: ParamReader, d: Omit<CommonTrainParams, 'promptId'>): CommonTrainParams {
  const common: CommonTrainParams = {
    promptId: r.string('promptId', undefined),
    sets: r.strings('sets', d.sets),
    maxQueries: r.nullableInt('maxQueries', d.maxQueries, 2),
    nearestTokens: r.int('nearestTokens', d.nearestTokens, 0),
    lr: r.number('lr', d.lr, (v) => v > 0, 'a positive number'),
    lrUnit: r.oneOf('lrUnit', d.lrUnit, LR_UNITS),
    weightDecay: r.number('weightDecay', d.weightDecay, (v) => v >= 0, 'a number ≥ 0'),
    // null switches clipping off.
    maxGradNorm: r.raw.maxGradNorm === null ? (r.mark('maxGradNorm'), null) : r.number('maxGradNorm', d.maxGradNorm ?? 1, (v) => v > 0, 'a positive number or null'),
    batchSize: r.int('batchSize', d.batchSize, 1),
    microBatchSize: r.int('microBatchSize', d.microBatchSize, 1),
    epochs: r.int('epochs', d.epochs, 1),
    maxSteps: r.nullableInt('maxSteps', d.maxSteps, 1),
    seed: r.int('seed', d.seed, 0),
  };
  if (d.maxGradNorm === null && r.raw.maxGradNorm === undefined) common.maxGradNorm = null;
  return common;
}

export function parseDroTrainParams(raw: unknown): DroTrainParams {
  const r = ParamReader.of('dro-train', raw);
  const d = defaultDroParams;
  const common = readCommon(r, d);
  const variant = r.oneOf('variant', d.variant, DRO_VARIANTS);
  const w = r.child('lossWeights');
  const weight = (key: keyof LossWeights) => w.number(key, d.lossWeights[key], (v) => v >= 0, 'a number ≥ 0');
  const lossWeights = { refusal: weight('refusal'), harmfulness: weight('harmfulness'), norm: weight('norm') };
  w.done();
  const a = r.child('ablationWeights');
  const given = r.raw.ablationWeights !== undefined && r.raw.ablationWeights !== null;
  const ablationWeights: DroTrainParams['ablationWeights'] = given ? {} : structuredClone(d.ablationWeights);
  for (const ablation of DRO_VARIANTS.filter((v): v is Ablation => v !== 'dro')) {
    if (!given || a.raw[ablation] === undefined) {
      a.mark(ablation);
      continue;
    }
    const one = a.child(ablation);
    const set: Partial<LossWeights> = {};
    for (const key of ['refusal', 'harmfulness', 'norm'] as const) {
      if (one.raw[key] === undefined) {
        one.mark(key);
        continue;
      }
      if (key === ABLATED_TERM[ablation]) one.fail(key, 'no weight for the term this ablation switches off', one.raw[key]);
      set[key] = one.number(key, 0, (v) => v >= 0, 'a number ≥ 0');
    }
    one.done();
    ablationWeights[ablation] = set;
  }
  a.done();
  const objectiveMinShare = r.number('objectiveMinShare', d.objectiveMinShare, (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  r.done();
  const params: DroTrainParams = { ...common, variant, lossWeights, ablationWeights, objectiveMinShare };
  const eff = effectiveWeights(params);
  if (eff.refusal === 0 && eff.harmfulness === 0 && eff.norm === 0) {
    r.fail('lossWeights', 'at least one loss term with a weight > 0 after the variant', { variant, lossWeights });
  }
  return params;
}

/** Which responses end with the end-of-turn target: only desirable ones, or every response (published). */
export const EOS_TARGETS = ['desirable', 'every'] as const;
/** How the two loss terms average: per response then over responses, or over every token of the batch (published). */
export const LOSS_AVERAGING = ['per-response', 'per-token'] as const;

export interface PromptTuningParams extends CommonTrainParams {
  weights: { likelihood: number; unlikelihood: number };
  /** Response tokens kept as targets (memory: the loss needs logits at every response position). */
  maxResponseTokens: number;
  /** Use at most this many sampled responses per training query (null = all judged ones). */
  samplesPerQuery: number | null;
  /**
   * "every": every response's targets are its first maxResponseTokens tokens plus the end-of-turn token
   * (the published baseline: up to 100 + EOS); "desirable": only desirable responses end with it, and only
   * when they fit in maxResponseTokens.
   */
  eosTargets: (typeof EOS_TARGETS)[number];
  /**
   * "per-token": each term is the sum over its responses' target tokens divided by their total count in the
   * batch (the published baseline); "per-response": each response's mean token loss, averaged over responses.
   */
  lossAveraging: (typeof LOSS_AVERAGING)[number];
  /**
   * Also train on the unprompted model's failures as undesirable responses (the published baseline): the
   * judged samples with prompt_id "none" of the same training queries where a harmful query complied or a
   * harmless one was refused, each under the soft prompt like every other example.
   */
  unpromptedNegatives: boolean;
}

/** The optimiser and data fields of a DRO preset (its loss settings do not apply to prompt tuning). */
function trainingProtocol(p: Omit<DroTrainParams, 'promptId'>): Omit<CommonTrainParams, 'promptId'> {
  const { variant: _variant, lossWeights: _lossWeights, ablationWeights: _ablationWeights, objectiveMinShare: _objectiveMinShare, ...rest } = p;
  return rest;
}

/**
 * What prompt-tuning does when given no params — the published baseline: AdamW lr 1e-3 (weight decay 0.01, clip 1.0 as for DRO), batch 50, 5 epochs,
 * up to 100 response tokens plus the end-of-turn token for every response, per-token averaged likelihood
 * and unlikelihood, the unprompted model's failures as extra negatives.
 */
export const defaultPromptTuningParams: Omit<PromptTuningParams, 'promptId'> = {
  ...trainingProtocol(defaultDroParams),
  lr: 1e-3,
  lrUnit: 'absolute',
  batchSize: 50,
  epochs: 5,
  weights: { likelihood: 1, unlikelihood: 1 },
  maxResponseTokens: 100,
  samplesPerQuery: null,
  eosTargets: 'every',
  lossAveraging: 'per-token',
  unpromptedNegatives: true,
  // Logits at every response position ([B, T, 49152] for SmolLM2) dominate memory.
  microBatchSize: 2,
};

export function parsePromptTuningParams(raw: unknown): PromptTuningParams {
  const r = ParamReader.of('prompt-tuning', raw);
  const d = defaultPromptTuningParams;
  const common = readCommon(r, d);
  const w = r.child('weights');
  const weights = {
    likelihood: w.number('likelihood', d.weights.likelihood, (v) => v >= 0, 'a number ≥ 0'),
    unlikelihood: w.number('unlikelihood', d.weights.unlikelihood, (v) => v >= 0, 'a number ≥ 0'),
  };
  w.done();
  const maxResponseTokens = r.int('maxResponseTokens', d.maxResponseTokens, 1);
  const samplesPerQuery = r.nullableInt('samplesPerQuery', d.samplesPerQuery, 1);
  const eosTargets = r.oneOf('eosTargets', d.eosTargets, EOS_TARGETS);
  const lossAveraging = r.oneOf('lossAveraging', d.lossAveraging, LOSS_AVERAGING);
  const unpromptedNegatives = r.boolean('unpromptedNegatives', d.unpromptedNegatives);
  r.done();
  if (weights.likelihood === 0 && weights.unlikelihood === 0) r.fail('weights', 'at least one weight > 0', weights);
  return { ...common, weights, maxResponseTokens, samplesPerQuery, eosTargets, lossAveraging, unpromptedNegatives };
}
