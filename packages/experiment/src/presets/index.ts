/**
 * Stage params for an experiment: the preset's params for each DAG role (presets/quick.ts, presets/paper.ts),
 * then the config's overrides. Overrides keyed by the plain stage name apply to every role of that stage;
 * those keyed by the role ("sampling:eval") apply after them. A value travels config → preset → DAG node
 * params → the stage's parseParams (which fills only what the role left out) without being re-defaulted.
 */
import { describeVerdict, parseSamplingParams } from '@dro/sampling';
import type { ExperimentConfig } from '../config.ts';
import { paperPreset } from './paper.ts';
import { PRESET_ROLES, type Preset, type PresetName } from './preset.ts';
import { quickPreset } from './quick.ts';

export { PRESET_NAMES, PRESET_ROLES, isPresetName, type Preset, type PresetName, type PresetRole } from './preset.ts';
export { QUICK_EVAL_PER_LABEL, QUICK_EVAL_SAMPLES, QUICK_TRAIN_PER_LABEL } from './quick.ts';

export const PRESETS: Readonly<Record<PresetName, Preset>> = { quick: quickPreset, paper: paperPreset };

type Params = Record<string, unknown>;

/** Every role a config's overrides may name: the roles and their stages. */
export const PARAM_ROLES: readonly string[] = [...PRESET_ROLES, ...new Set(PRESET_ROLES.map((r) => r.split(':')[0]!))];

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

/** The config's shard size (its own, else the preset's); null = no sharding. */
export function shardSizeOf(config: ExperimentConfig): number | null {
  return config.shardSize === undefined ? PRESETS[config.preset].shardSize : config.shardSize;
}

/** Params of one DAG role: preset, then overrides by stage, then by role, then the DAG's own fields. */
export function stageParams(config: ExperimentConfig, role: string, extra: Params = {}): Params {
  const preset = PRESETS[config.preset].params[role as keyof Preset['params']];
  if (!preset) throw new Error(`no preset for DAG role "${role}"`);
  const stage = role.split(':')[0]!;
  let params = structuredClone(preset) as Params;
  if (stage !== role && config.overrides[stage]) params = mergeParams(params, config.overrides[stage]!);
  if (config.overrides[role]) params = mergeParams(params, config.overrides[role]!);
  return mergeParams(params, extra);
}

/** Which judge and selection produce a config's held-out numbers (its "sampling:eval" params), in words. */
export function heldOutVerdict(config: ExperimentConfig): string {
  return describeVerdict(parseSamplingParams(stageParams(config, 'sampling:eval')));
}
