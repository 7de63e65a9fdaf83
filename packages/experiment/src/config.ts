/**
 * Experiment configs: what `dro run --config FILE` takes. A config names the models, the query files, the
 * safety prompts and a preset ("quick" for a 2-core CPU, "paper" for the paper's protocol), plus optional
 * per-stage overrides. Every field is validated with an error that names it. Paths may start with `~`
 * and resolve against the config file's directory (paths.ts in @dro/artifacts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readUtf8File, repoDataDir, resolveStoreLocation, resolveUserPath } from '@dro/artifacts';
import { DEFAULT_MODEL_ID, defaultModelPath, resolveModelArgument } from '@dro/llm/weights';
import { BadInputError, isPackageSpecifier, type StagePluginSource } from '@dro/pipeline';
import { PARAM_ROLES, PRESET_NAMES, PRESETS, isPresetName, type PresetName } from './presets/index.ts';
import { droStageRegistry } from './stages.ts';


export interface ModelSpec {
  /** Short id used in node ids and the report ("qwen2.5-coder-0.5b"). */
  id: string;
  /** GGUF file or HF directory; in a config file also a known model's id (`dro llm models`). */
  path: string;
}

export type EvalSetSpec = string | { file: string; label: 'harmful' | 'harmless' };

export function evalSetFile(spec: EvalSetSpec): string {
  return typeof spec === 'string' ? spec : spec.file;
}

export interface ExperimentConfig {
  name: string;
  preset: PresetName;
  models: ModelSpec[];
  queries: {
    /** Training queries (harmful + harmless, labelled). */
    train: string;
    /**
     * Held-out evaluation sets; any query file works (jsonl, csv, txt, parquet). A file without a label
     * column (e.g. a .txt list of harmful requests) is given as { file, label }.
     */
    eval: EvalSetSpec[];
  };
  /** Safety prompts by id → text file. The "none" variant (no safety prompt) is always included. */
  prompts: Record<string, string>;
  /** The basic safety prompt: the default trained prompt, and the text prompt every preset evaluates. */
  basicPrompt: string;
  /**
   * Safety prompts a soft prompt is trained from (DRO, its ablations and the prompt-tuning baseline each
   * train one per prompt), each evaluated as "<method>:<promptId>" beside its text prompt. Default: every
   * prompt with the paper preset (the paper trains from each of its basic prompts), the basic prompt with
   * the quick preset.
   */
  trainPrompts?: string[];
  /**
   * Text prompts evaluated on the held-out sets besides "none" and the trained prompts. Default: every
   * prompt with the paper preset, only the basic prompt with the quick preset (each condition costs a
   * sampling pass). Every prompt still shapes the directions (PCA and boundaries see all variants).
   */
  evalPrompts?: string[];
  /**
   * Where refusal-boundary labels come from: sampled responses + judge (the paper), or refusal
   * log-probabilities (one forward pass per input). Default: sampling with the paper preset, logprob with
   * the quick preset — sampling every training input is most of the quick run's time on a 2-core CPU.
   */
  labelSource: 'sampling' | 'logprob';
  /** Baselines and ablations trained besides DRO and evaluated beside it. */
  baselines: { promptTuning: boolean; ablations: Array<'no-norm' | 'no-refusal' | 'no-harmfulness'> };
  /** Per-stage param overrides, merged over the preset: { "sampling": { "samples": 8 } }. */
  overrides: Record<string, Record<string, unknown>>;
  /**
   * Stage plugins: a built-in stage's name → the module that replaces it in this experiment, an absolute
   * path (the config gives it relative to itself) or a package name resolved from the config's directory.
   * Loaded and checked before anything runs (see loadExperimentPlugins).
   */
  stages: Record<string, StagePluginSource>;
  /**
   * Artifact store: a directory (relative to the config file) or an `s3://bucket/prefix` URI (default:
   * $DRO_STORE or .dro/store under the working directory).
   */
  store?: string;
  /**
   * Run even when evaluation sets share queries with the training set (compared as data-prep's queryKey
   * folds them), with a warning that gives the count. Default false: the overlap is an error, because
   * held-out numbers on training queries measure memorisation, not generalisation.
   */
  allowOverlap: boolean;
  /**
   * Rows per shard of the row-parallel stages (sampling, refusal-logprob, extract, reference-answers): each
   * shard is its own cache entry and unit of work (a Temporal activity). Default: the preset's
   * (presets/: Preset.shardSize); null runs every node whole.
   */
  shardSize?: number | null;
}

/**
 * The embedded default: Qwen2.5-Coder-0.5B-Instruct (a model that refuses, so DRO has something to move),
 * the project's data, the quick preset.
 */
export function defaultConfig(): ExperimentConfig {
  const data = repoDataDir();
  return {
    name: 'quick',
    preset: 'quick',
    models: [{ id: DEFAULT_MODEL_ID, path: defaultModelPath() }],
    queries: { train: path.join(data, 'queries', 'train.jsonl'), eval: [path.join(data, 'queries', 'heldout.jsonl')] },
    prompts: {
      default: path.join(data, 'prompts', 'default.txt'),
      short: path.join(data, 'prompts', 'short.txt'),
      medium: path.join(data, 'prompts', 'medium.txt'),
    },
    basicPrompt: 'default',
    labelSource: PRESETS.quick.labelSource,
    baselines: { promptTuning: false, ablations: [] },
    overrides: {},
    allowOverlap: false,
    stages: {},
  };
}

const KEYS: Array<keyof ExperimentConfig> = [
  'name', 'preset', 'models', 'queries', 'prompts', 'basicPrompt', 'trainPrompts', 'evalPrompts', 'labelSource', 'baselines', 'overrides', 'stages', 'store',
  'allowOverlap', 'shardSize',
];

function fail(file: string, field: string, expected: string, got?: unknown): never {
  const shown = got === undefined ? '' : `, got ${JSON.stringify(got)}`;
  throw new BadInputError(`${file}: field "${field}": expected ${expected}${shown}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validate a parsed config object. Missing fields take the embedded default's values, and the preset's
 * rules where the preset decides (labelSource); relative paths resolve against `baseDir` (the config
 * file's directory). Files must exist. `preset` (the command line's --preset) replaces the config's.
 */
export function validateConfig(raw: unknown, file: string, baseDir: string, presetOverride?: PresetName): ExperimentConfig {
  if (!isObject(raw)) fail(file, '(root)', 'a JSON object', raw);
  for (const k of Object.keys(raw)) {
    if (!KEYS.includes(k as keyof ExperimentConfig)) fail(file, k, `one of ${KEYS.join(', ')} (unknown field)`);
  }
  const d = defaultConfig();
  const abs = (p: string) => resolveUserPath(p, baseDir);
  const storeLocation = (p: string) => {
    try {
      return resolveStoreLocation(p, baseDir);
    } catch (error) {
      return fail(file, 'store', `a directory or an s3://bucket/prefix URI (${(error as Error).message})`, p);
    }
  };
  const mustExist = (field: string, p: string) => {
    if (!fs.existsSync(p)) fail(file, field, 'an existing file or directory', p);
    return p;
  };
  const str = (field: string, v: unknown, dflt: string) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || v === '') fail(file, field, 'a non-empty string', v);
    return v;
  };

  const name = str('name', raw.name, d.name);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) fail(file, 'name', 'letters, digits, ".", "_" or "-"', name);
  const filePreset = str('preset', raw.preset, d.preset);
  const presetNames = PRESET_NAMES.map((p) => `"${p}"`).join(' or ');
  if (!isPresetName(filePreset)) fail(file, 'preset', presetNames, filePreset);
  if (presetOverride !== undefined && !isPresetName(presetOverride)) throw new BadInputError(`--preset: expected ${presetNames}, got ${JSON.stringify(presetOverride)}`);
  const preset: PresetName = presetOverride ?? filePreset;

  let models = d.models;
  if (raw.models !== undefined) {
    if (!Array.isArray(raw.models) || raw.models.length === 0) fail(file, 'models', 'a non-empty array', raw.models);
    const seen = new Set<string>();
    models = raw.models.map((m, i) => {
      if (!isObject(m)) fail(file, `models[${i}]`, 'an object { id, path }', m);
      const id = str(`models[${i}].id`, m.id, '');
      if (!/^[A-Za-z0-9._-]+$/.test(id)) fail(file, `models[${i}].id`, 'letters, digits, ".", "_" or "-"', id);
      if (seen.has(id)) fail(file, `models[${i}].id`, 'a unique id', id);
      seen.add(id);
      return { id, path: mustExist(`models[${i}].path`, abs(resolveModelArgument(str(`models[${i}].path`, m.path, '')))) };
    });
  }

  let queries = d.queries;
  if (raw.queries !== undefined) {
    if (!isObject(raw.queries)) fail(file, 'queries', 'an object { train, eval }', raw.queries);
    const train = mustExist('queries.train', abs(str('queries.train', raw.queries.train, d.queries.train)));
    let evalSets = d.queries.eval;
    if (raw.queries.eval !== undefined) {
      if (!Array.isArray(raw.queries.eval) || raw.queries.eval.length === 0) {
        fail(file, 'queries.eval', 'a non-empty array of query files', raw.queries.eval);
      }
      evalSets = raw.queries.eval.map((e, i): EvalSetSpec => {
        const field = `queries.eval[${i}]`;
        if (typeof e === 'string') return mustExist(field, abs(str(field, e, '')));
        if (!isObject(e)) fail(file, field, 'a file path or { file, label }', e);
        if (e.label !== 'harmful' && e.label !== 'harmless') fail(file, `${field}.label`, '"harmful" or "harmless"', e.label);
        return { file: mustExist(`${field}.file`, abs(str(`${field}.file`, e.file, ''))), label: e.label };
      });
    }
    queries = { train, eval: evalSets };
  }

  let prompts = d.prompts;
  if (raw.prompts !== undefined) {
    if (!isObject(raw.prompts) || Object.keys(raw.prompts).length === 0) {
      fail(file, 'prompts', 'an object { promptId: textFile } with at least one prompt', raw.prompts);
    }
    prompts = {};
    for (const [id, p] of Object.entries(raw.prompts)) {
      if (id === 'none' || !/^[A-Za-z0-9._-]+$/.test(id)) fail(file, `prompts.${id}`, 'an id of letters/digits/._- other than "none"');
      prompts[id] = mustExist(`prompts.${id}`, abs(str(`prompts.${id}`, p, '')));
    }
  }
  const basicPrompt = str('basicPrompt', raw.basicPrompt, raw.prompts === undefined ? d.basicPrompt : Object.keys(prompts)[0]!);
  if (!(basicPrompt in prompts)) fail(file, 'basicPrompt', `one of the prompt ids (${Object.keys(prompts).join(', ')})`, basicPrompt);

  let evalPrompts: string[] | undefined;
  if (raw.evalPrompts !== undefined) {
    if (!Array.isArray(raw.evalPrompts) || raw.evalPrompts.some((p) => typeof p !== 'string' || !(p in prompts))) {
      fail(file, 'evalPrompts', `an array of prompt ids (${Object.keys(prompts).join(', ')})`, raw.evalPrompts);
    }
    evalPrompts = raw.evalPrompts as string[];
  }
  let trainPrompts: string[] | undefined;
  if (raw.trainPrompts !== undefined) {
    const v = raw.trainPrompts;
    if (!Array.isArray(v) || v.length === 0 || v.some((p) => typeof p !== 'string' || !(p in prompts)) || new Set(v).size !== v.length) {
      fail(file, 'trainPrompts', `a non-empty array of distinct prompt ids (${Object.keys(prompts).join(', ')})`, v);
    }
    trainPrompts = v as string[];
  }

  const labelSource = str('labelSource', raw.labelSource, PRESETS[preset].labelSource);
  if (labelSource !== 'sampling' && labelSource !== 'logprob') fail(file, 'labelSource', '"sampling" or "logprob"', labelSource);

  let baselines = d.baselines;
  if (raw.baselines !== undefined) {
    if (!isObject(raw.baselines)) fail(file, 'baselines', 'an object { promptTuning, ablations }', raw.baselines);
    const pt = raw.baselines.promptTuning ?? false;
    if (typeof pt !== 'boolean') fail(file, 'baselines.promptTuning', 'true or false', pt);
    const abl = raw.baselines.ablations ?? [];
    const allowed = ['no-norm', 'no-refusal', 'no-harmfulness'];
    if (!Array.isArray(abl) || abl.some((a) => !allowed.includes(a as string))) {
      fail(file, 'baselines.ablations', `an array of ${allowed.map((a) => `"${a}"`).join(', ')}`, abl);
    }
    baselines = { promptTuning: pt, ablations: abl as ExperimentConfig['baselines']['ablations'] };
  }

  let overrides = d.overrides;
  if (raw.overrides !== undefined) {
    if (!isObject(raw.overrides)) fail(file, 'overrides', 'an object { stageName: { param: value } }', raw.overrides);
    for (const [k, v] of Object.entries(raw.overrides)) {
      if (!PARAM_ROLES.includes(k)) fail(file, `overrides.${k}`, `a stage or role name (${PARAM_ROLES.join(', ')})`);
      if (!isObject(v)) fail(file, `overrides.${k}`, 'an object of params', v);
    }
    overrides = Object.fromEntries(
      Object.entries(raw.overrides as ExperimentConfig['overrides']).map(([k, v]) => {
        // The LLM judge's model is a path the user wrote (or a known model's id): resolved like models[].path.
        const judge = v.llmJudge;
        if (k.split(':')[0] !== 'sampling' || !isObject(judge) || typeof judge.model !== 'string' || judge.model === '' || judge.model === 'self') return [k, v];
        return [k, { ...v, llmJudge: { ...judge, model: abs(resolveModelArgument(judge.model)) } }];
      }),
    );
  }
  const stages: ExperimentConfig['stages'] = {};
  if (raw.stages !== undefined) {
    if (!isObject(raw.stages)) fail(file, 'stages', 'an object { builtInStage: "module path or package name" }', raw.stages);
    const builtIn = droStageRegistry().list().map((s) => s.name);
    for (const [name, spec] of Object.entries(raw.stages)) {
      if (!builtIn.includes(name)) fail(file, `stages.${name}`, `a built-in stage name (${builtIn.join(', ')})`);
      const module = str(`stages.${name}`, spec, '');
      stages[name] = isPackageSpecifier(module) && !module.startsWith('~')
        ? { module, resolveFrom: baseDir }
        : { module: mustExist(`stages.${name}`, abs(module)) };
    }
  }
  const store = raw.store === undefined ? undefined : storeLocation(str('store', raw.store, ''));
  const allowOverlap = raw.allowOverlap ?? d.allowOverlap;
  if (typeof allowOverlap !== 'boolean') fail(file, 'allowOverlap', 'true or false', allowOverlap);
  const shardSize = raw.shardSize as number | null | undefined;
  if (shardSize !== undefined && shardSize !== null && (!Number.isInteger(shardSize) || shardSize < 1)) fail(file, 'shardSize', 'a whole number of rows ≥ 1, or null (no sharding)', shardSize);
  return {
    name, preset, models, queries, prompts, basicPrompt, trainPrompts, evalPrompts,
    labelSource: labelSource as ExperimentConfig['labelSource'], baselines, overrides, stages, store, allowOverlap,
    ...(shardSize !== undefined ? { shardSize } : {}),
  };
}

/** Text prompts evaluated besides "none" and the trained prompts: the config's, else as its preset says. */
export function evalPromptsOf(config: ExperimentConfig): string[] {
  if (config.evalPrompts) return config.evalPrompts;
  return PRESETS[config.preset].evalPrompts === 'every' ? Object.keys(config.prompts) : [config.basicPrompt];
}

/** The prompts soft prompts are trained from: the config's, else as its preset says. */
export function trainPromptsOf(config: ExperimentConfig): string[] {
  if (config.trainPrompts) return config.trainPrompts;
  return PRESETS[config.preset].trainPrompts === 'every' ? Object.keys(config.prompts) : [config.basicPrompt];
}

/** Read a config file: strict UTF-8 (an invalid byte is reported with its line), then JSON. */
function readConfigJson(file: string): unknown {
  const text = readUtf8File(file, 'config file');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadInputError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * The experiment a command runs (`dro run`, `dro stage`, `dro stages`): the config file (`~` in its path
 * expanded), or the embedded default without one, with `preset` (--preset) in place of the config's —
 * its rules (labelSource, prompts) apply wherever the file leaves them open.
 */
export function resolveConfig(file?: string, preset?: PresetName): ExperimentConfig {
  if (file === undefined) return validateConfig({}, 'the embedded default config', process.cwd(), preset);
  const resolved = resolveUserPath(file);
  return validateConfig(readConfigJson(resolved), file, path.dirname(resolved), preset);
}
