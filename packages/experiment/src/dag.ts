/**
 * The DRO experiment as a DAG: one sub-graph per model, one report over all of them.
 *
 *   queries(train) ─► data-prep(train, every prompt variant) ─┬─► sampling ───────────────┐ (or refusal-logprob)
 *                                                             ├─► extract ─► directions ◄─┘
 *                                                             └────────────► dro-train (+ ablations, prompt-tuning)
 *   queries(eval)  ─► data-prep(eval, one variant per condition) ─► sampling(condition) ─► evaluate(condition)
 *                                                                    reference-answers ──┘
 *                     (per eval set with harmless queries; a set without any borrows another set's answers,
 *                      which it never reads: the capability proxy scores harmless queries only)
 *   every evaluate / training output ─► report
 *
 * Conditions evaluated on the held-out sets: "none", every text prompt, "dro" (soft prompt trained from
 * the basic prompt) and, when configured, the ablations and the prompt-tuning baseline. Soft-prompt
 * conditions reuse the basic prompt's rendered inputs and splice the soft prompt into its span.
 *
 * The same Dag value is run by the local runner and by the Temporal workflow.
 */
import type { Dag, DagNode } from '@dro/pipeline';
import { BadInputError } from '@dro/pipeline';
import { evalSetFile, type ExperimentConfig } from './config.ts';
import type { ExperimentInputs } from './inputs.ts';
import { stageParams } from './presets.ts';

/** A condition evaluated on the held-out sets. */
export interface Condition {
  /** "none", a prompt id, "dro", "dro-no-norm", …, "prompt-tuning". */
  id: string;
  /** The text prompt whose rendered inputs are used (soft prompts: the basic prompt they replace). */
  promptId: string;
  /** Training node whose softPrompt output is spliced in, or null for text prompts. */
  softFrom: string | null;
}

export function evalPromptsOf(config: ExperimentConfig): string[] {
  if (config.evalPrompts) return config.evalPrompts;
  return config.preset === 'paper' ? Object.keys(config.prompts) : [config.basicPrompt];
}

export function conditionsOf(config: ExperimentConfig): Condition[] {
  const textIds = ['none', ...new Set([config.basicPrompt, ...evalPromptsOf(config)])];
  const text: Condition[] = textIds.map((id) => ({ id, promptId: id, softFrom: null }));
  const soft: Condition[] = [{ id: 'dro', promptId: config.basicPrompt, softFrom: 'dro' }];
  for (const a of config.baselines.ablations) soft.push({ id: `dro-${a}`, promptId: config.basicPrompt, softFrom: `dro-${a}` });
  if (config.baselines.promptTuning) soft.push({ id: 'prompt-tuning', promptId: config.basicPrompt, softFrom: 'prompt-tuning' });
  return [...text, ...soft];
}

const out = (node: string, output: string) => ({ node, output });

function modelSubgraph(config: ExperimentConfig, inputs: ExperimentInputs, model: ExperimentInputs['models'][number]): DagNode[] {
  const m = model.id;
  const id = (name: string) => `${name}@${m}`;
  const modelRef = { path: model.path, digest: model.digest };
  const p = (stage: string, extra: Record<string, unknown> = {}) => stageParams(config, stage, extra);
  const nodes: DagNode[] = [];
  const add = (node: Omit<DagNode, 'model'>, needsModel = true) => nodes.push({ ...node, model: needsModel ? modelRef : null });

  // --- analysis: labels, hidden states, directions -------------------------------------------------
  add({ id: id('prep-train'), stage: 'data-prep', params: p('data-prep:train'), inputs: { queries: { ref: inputs.train }, prompts: { ref: inputs.prompts } } });
  const rendered = out(id('prep-train'), 'rendered');
  if (config.labelSource === 'sampling') {
    add({ id: id('sample-train'), stage: 'sampling', params: p('sampling:train'), inputs: { rendered } });
  }
  const labels =
    config.labelSource === 'sampling'
      ? out(id('sample-train'), 'scores')
      : (add({ id: id('refusal-logprob'), stage: 'refusal-logprob', params: p('refusal-logprob'), inputs: { rendered } }),
        out(id('refusal-logprob'), 'scores'));
  add({ id: id('extract'), stage: 'extract', params: p('extract'), inputs: { rendered } });
  add({ id: id('directions'), stage: 'directions', params: p('directions'), inputs: { hiddenStates: out(id('extract'), 'hiddenStates'), scores: labels } }, false);
  const directions = out(id('directions'), 'directions');

  // --- training: DRO, ablations, baseline ----------------------------------------------------------
  const variants: Array<[string, string]> = [['dro', 'dro'], ...config.baselines.ablations.map((a): [string, string] => [`dro-${a}`, a])];
  for (const [nodeName, variant] of variants) {
    add({ id: id(nodeName), stage: 'dro-train', params: p('dro-train', { promptId: config.basicPrompt, variant }), inputs: { rendered, directions } });
  }
  if (config.baselines.promptTuning) {
    if (config.labelSource !== 'sampling') throw new BadInputError('baselines.promptTuning needs labelSource "sampling" (it trains on sampled responses)');
    add({ id: id('prompt-tuning'), stage: 'prompt-tuning', params: p('prompt-tuning', { promptId: config.basicPrompt }), inputs: { rendered, samples: out(id('sample-train'), 'samples') } });
  }

  // --- evaluation on the held-out sets ---------------------------------------------------------------
  const tagOf = (i: number) => (inputs.eval.length > 1 ? `-${i}` : '');
  const hasHarmless = (i: number) => inputs.evalLabels[i]!.includes('harmless');
  // Reference answers (the capability proxy's yardstick) exist only for harmless queries. A set without
  // any is still evaluated; its evaluate nodes take the first harmless-bearing set's references, whose
  // rows they never match (capability is reported for harmless rows only, as null for harmful ones).
  const referenceSet = inputs.eval.findIndex((_, i) => hasHarmless(i));
  if (referenceSet < 0) {
    const files = config.queries.eval.map((spec, i) => `queries.eval[${i}] (${evalSetFile(spec)})`).join(', ');
    throw new BadInputError(`queries.eval: no evaluation set has harmless queries (${files}); the capability proxy answers harmless queries, so add a set with some`);
  }
  for (const [i, evalRef] of inputs.eval.entries()) {
    const setTag = tagOf(i);
    const referencesNode = id(`references${hasHarmless(i) ? setTag : tagOf(referenceSet)}`);
    const prepFor = (promptId: string) => id(`prep-eval${setTag}-${promptId}`);
    const promptIds = new Set(conditionsOf(config).map((c) => c.promptId));
    for (const promptId of promptIds) {
      add({
        id: prepFor(promptId), stage: 'data-prep',
        params: p('data-prep:eval', { promptVariants: [promptId] }),
        inputs: { queries: { ref: evalRef }, prompts: { ref: inputs.prompts } },
      });
    }
    if (hasHarmless(i)) {
      add({ id: referencesNode, stage: 'reference-answers', params: p('reference-answers', { promptId: 'none' }), inputs: { rendered: out(prepFor('none'), 'rendered') } });
    }
    for (const c of conditionsOf(config)) {
      const soft = c.softFrom ? { [`softPrompt:${c.id}`]: out(id(c.softFrom), 'softPrompt') } : {};
      const evalRendered = out(prepFor(c.promptId), 'rendered');
      add({ id: id(`sample-eval${setTag}-${c.id}`), stage: 'sampling', params: p('sampling:eval'), inputs: { rendered: evalRendered, ...soft } });
      add({
        id: id(`evaluate${setTag}-${c.id}`), stage: 'evaluate',
        params: p('evaluate', { model: m, condition: c.id, promptId: c.promptId }),
        inputs: {
          rendered: evalRendered, directions, samples: out(id(`sample-eval${setTag}-${c.id}`), 'samples'),
          references: out(referencesNode, 'references'), ...soft,
        },
      });
    }
  }
  return nodes;
}

/** Inputs of the report node contributed by one model's sub-graph. */
function reportInputs(config: ExperimentConfig, inputs: ExperimentInputs, modelId: string): DagNode['inputs'] {
  const id = (name: string) => `${name}@${modelId}`;
  // Report keys must be unique across models: "<model>.<condition>".
  const key = (k: string) => `${modelId}.${k}`;
  const r: DagNode['inputs'] = { [`directions:${modelId}`]: out(id('directions'), 'directions') };
  for (const [i] of inputs.eval.entries()) {
    const setTag = inputs.eval.length > 1 ? `-${i}` : '';
    for (const c of conditionsOf(config)) {
      r[`metrics:${key(c.id + setTag)}`] = out(id(`evaluate${setTag}-${c.id}`), 'metrics');
      r[`points:${key(c.id + setTag)}`] = out(id(`evaluate${setTag}-${c.id}`), 'points');
      r[`samples:${key(c.id + setTag)}`] = out(id(`sample-eval${setTag}-${c.id}`), 'samples');
    }
  }
  const trained = ['dro', ...config.baselines.ablations.map((a) => `dro-${a}`), ...(config.baselines.promptTuning ? ['prompt-tuning'] : [])];
  for (const t of trained) {
    r[`curve:${key(t)}`] = out(id(t), 'curve');
    r[`nearestTokens:${key(t)}`] = out(id(t), 'nearestTokens');
    if (t !== 'prompt-tuning') r[`shift:${key(t)}`] = out(id(t), 'shift');
  }
  return r;
}

export interface ExperimentDag {
  dag: Dag;
  /** Node ids per model (the Temporal engine runs each model's sub-graph as a child workflow). */
  modelNodes: Record<string, string[]>;
  reportNode: string;
}

export function buildExperimentDag(config: ExperimentConfig, inputs: ExperimentInputs): ExperimentDag {
  const nodes: DagNode[] = [];
  const modelNodes: Record<string, string[]> = {};
  const report: DagNode['inputs'] = {};
  for (const model of inputs.models) {
    const sub = modelSubgraph(config, inputs, model);
    modelNodes[model.id] = sub.map((n) => n.id);
    nodes.push(...sub);
    Object.assign(report, reportInputs(config, inputs, model.id));
  }
  const reportNode = 'report';
  nodes.push({ id: reportNode, stage: 'report', params: stageParams(config, 'report', { title: `DRO report — ${config.name}` }), inputs: report, model: null });
  return { dag: { name: config.name, nodes }, modelNodes, reportNode };
}

/**
 * The sub-DAG that runs `target` (a stage name, or a node id) and everything it needs: the matching nodes
 * plus their ancestors. Used by `dro stage NAME`.
 */
export function dagFor(dag: Dag, target: string): Dag {
  const byId = new Map(dag.nodes.map((n) => [n.id, n]));
  const roots = dag.nodes.filter((n) => n.id === target || n.stage === target);
  if (roots.length === 0) {
    const stages = [...new Set(dag.nodes.map((n) => n.stage))].join(', ');
    throw new Error(`no stage or node "${target}" in DAG "${dag.name}" (stages: ${stages})`);
  }
  const keep = new Set<string>();
  const visit = (id: string) => {
    if (keep.has(id)) return;
    keep.add(id);
    for (const src of Object.values(byId.get(id)!.inputs)) if ('node' in src) visit(src.node);
  };
  roots.forEach((n) => visit(n.id));
  return { name: `${dag.name}:${target}`, nodes: dag.nodes.filter((n) => keep.has(n.id)) };
}
