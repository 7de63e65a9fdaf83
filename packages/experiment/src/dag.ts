/**
 * The DRO experiment as a DAG: one sub-graph per model, one report over all of them.
 *
 *   queries(train) ─► data-prep(train, every prompt variant) ─┬─► sampling ───────────────┐ (or refusal-logprob)
 *                                                             ├─► extract ─► directions ◄─┘
 *                                                             └────────────► dro-train per trained prompt (+ ablations, prompt-tuning)
 *   queries(eval)  ─► data-prep(eval, one variant per condition) ─┬─► sampling(condition) ─────► evaluate(condition)
 *                                                                 └─► eval-forward(condition) ──┘ (+ directions)
 *                                   (sets with harmless queries) reference-answers ─► eval-forward
 *   every evaluate / training output ─► report
 *
 * Conditions evaluated on the held-out sets: "none", every evaluated text prompt, and per trained prompt p
 * (trainPrompts) "dro:p", each configured ablation "dro-<ablation>:p" and the prompt-tuning baseline
 * "prompt-tuning:p". Soft-prompt conditions reuse p's rendered inputs and splice the soft prompt into its
 * span; each is compared with p on the same queries. Training nodes are named like their condition.
 *
 * Everything a config makes impossible is rejected here (preflight.ts); checkExperiment (run.ts) builds
 * this DAG from stand-in refs before anything is imported, so that happens before anything is written.
 * The same Dag value is run by the local runner and by the Temporal workflow.
 */
import type { Dag, DagNode } from '@dro/pipeline';
import { BadInputError } from '@dro/pipeline';
import { evalPromptsOf, trainPromptsOf, type ExperimentConfig } from './config.ts';
import type { ExperimentInputs } from './inputs.ts';
import { checkNodeSets, checkTrainingSetup } from './preflight.ts';
import { shardSizeOf, stageParams } from './presets/index.ts';
import { droStageRegistry } from './stages.ts';

/** A condition evaluated on the held-out sets. */
export interface Condition {
  /** "none", a prompt id, or a trained prompt "<method>:<promptId>" ("dro:default", "dro-no-norm:short", "prompt-tuning:default"). */
  id: string;
  /** The text prompt whose rendered inputs are used (soft prompts: the prompt they were trained from and replace). */
  promptId: string;
  /** Training node (named like the condition) whose softPrompt output is spliced in, or null for text prompts. */
  softFrom: string | null;
}

/** Every trained prompt: method × trained-from prompt. `stage` is the training stage, `variant` dro-train's. */
export function trainedPromptsOf(config: ExperimentConfig): Array<{ id: string; promptId: string; stage: 'dro-train' | 'prompt-tuning'; variant: string | null }> {
  return trainPromptsOf(config).flatMap((p) => [
    { id: `dro:${p}`, promptId: p, stage: 'dro-train' as const, variant: 'dro' },
    ...config.baselines.ablations.map((a) => ({ id: `dro-${a}:${p}`, promptId: p, stage: 'dro-train' as const, variant: a })),
    ...(config.baselines.promptTuning ? [{ id: `prompt-tuning:${p}`, promptId: p, stage: 'prompt-tuning' as const, variant: null }] : []),
  ]);
}

export function conditionsOf(config: ExperimentConfig): Condition[] {
  const textIds = ['none', ...new Set([config.basicPrompt, ...evalPromptsOf(config), ...trainPromptsOf(config)])];
  const text: Condition[] = textIds.map((id) => ({ id, promptId: id, softFrom: null }));
  const soft: Condition[] = trainedPromptsOf(config).map((t) => ({ id: t.id, promptId: t.promptId, softFrom: t.id }));
  return [...text, ...soft];
}

const out = (node: string, output: string) => ({ node, output });

function modelSubgraph(config: ExperimentConfig, inputs: ExperimentInputs, model: ExperimentInputs['models'][number]): DagNode[] {
  const m = model.id;
  const id = (name: string) => `${name}@${m}`;
  const modelRef = { path: model.path, digest: model.digest };
  const p = (stage: string, extra: Record<string, unknown> = {}) => stageParams(config, stage, extra);
  const nodes: DagNode[] = [];
  /** `sets`: the query sets the node's inputs hold (a `sets` param naming another would find no rows). */
  const add = (node: Omit<DagNode, 'model'>, sets: string[], needsModel = true) => {
    checkNodeSets(node, sets);
    const shardSize = shardSizeOf(config);
    const rowParallel = droStageRegistry().get(node.stage)?.rowParallel !== undefined;
    nodes.push({ ...node, model: needsModel ? modelRef : null, ...(rowParallel && shardSize !== null ? { shardSize } : {}) });
  };
  const train = [inputs.sets.train.name];

  // --- analysis: labels, hidden states, directions -------------------------------------------------
  add({ id: id('prep-train'), stage: 'data-prep', params: p('data-prep:train'), inputs: { queries: { ref: inputs.train }, prompts: { ref: inputs.prompts } } }, train);
  const rendered = out(id('prep-train'), 'rendered');
  if (config.labelSource === 'sampling') {
    add({ id: id('sample-train'), stage: 'sampling', params: p('sampling:train'), inputs: { rendered } }, train);
  }
  const labels =
    config.labelSource === 'sampling'
      ? out(id('sample-train'), 'scores')
      : (add({ id: id('refusal-logprob'), stage: 'refusal-logprob', params: p('refusal-logprob'), inputs: { rendered } }, train),
        out(id('refusal-logprob'), 'scores'));
  add({ id: id('extract'), stage: 'extract', params: p('extract'), inputs: { rendered } }, train);
  add({ id: id('directions'), stage: 'directions', params: p('directions'), inputs: { hiddenStates: out(id('extract'), 'hiddenStates'), scores: labels } }, train, false);
  const directions = out(id('directions'), 'directions');

  // --- training: DRO, ablations, baseline, from every trained prompt ------------------------------------
  for (const t of trainedPromptsOf(config)) {
    if (t.stage === 'dro-train') {
      add({ id: id(t.id), stage: 'dro-train', params: p('dro-train', { promptId: t.promptId, variant: t.variant }), inputs: { rendered, directions } }, train);
    } else {
      if (config.labelSource !== 'sampling') throw new BadInputError('baselines.promptTuning needs labelSource "sampling" (it trains on sampled responses)');
      add({ id: id(t.id), stage: 'prompt-tuning', params: p('prompt-tuning', { promptId: t.promptId }), inputs: { rendered, samples: out(id('sample-train'), 'samples') } }, train);
    }
  }

  // --- evaluation on the held-out sets ---------------------------------------------------------------
  for (const [i, evalRef] of inputs.eval.entries()) {
    const set = inputs.sets.eval[i]!;
    const setTag = inputs.eval.length > 1 ? `-${i}` : '';
    const prepFor = (promptId: string) => id(`prep-eval${setTag}-${promptId}`);
    const promptIds = new Set(conditionsOf(config).map((c) => c.promptId));
    for (const promptId of promptIds) {
      add({
        id: prepFor(promptId), stage: 'data-prep',
        params: p('data-prep:eval', { promptVariants: [promptId] }),
        inputs: { queries: { ref: evalRef }, prompts: { ref: inputs.prompts } },
      }, [set.name]);
    }
    // The capability yardstick: the unprompted model's answers to harmless queries, so only where there are some.
    const references: DagNode['inputs'] = {};
    if (set.labels.includes('harmless')) {
      add({ id: id(`references${setTag}`), stage: 'reference-answers', params: p('reference-answers', { promptId: 'none' }), inputs: { rendered: out(prepFor('none'), 'rendered') } }, [set.name]);
      references[`references:${set.name}`] = out(id(`references${setTag}`), 'references');
    }
    for (const c of conditionsOf(config)) {
      const soft = c.softFrom ? { [`softPrompt:${c.id}`]: out(id(c.softFrom), 'softPrompt') } : {};
      const evalRendered = out(prepFor(c.promptId), 'rendered');
      add({ id: id(`sample-eval${setTag}-${c.id}`), stage: 'sampling', params: p('sampling:eval'), inputs: { rendered: evalRendered, ...soft } }, [set.name]);
      // The model pass (row-parallel: it shards) apart from the metrics, which need no model.
      add({
        id: id(`eval-forward${setTag}-${c.id}`), stage: 'eval-forward',
        params: p('eval-forward', { promptId: c.promptId }),
        inputs: { rendered: evalRendered, ...references, ...soft },
      }, [set.name]);
      add({
        id: id(`evaluate${setTag}-${c.id}`), stage: 'evaluate',
        params: p('evaluate', { model: m, condition: c.id, promptId: c.promptId }),
        inputs: { rendered: evalRendered, directions, samples: out(id(`sample-eval${setTag}-${c.id}`), 'samples'), hiddenStates: out(id(`eval-forward${setTag}-${c.id}`), 'hiddenStates') },
      }, [set.name], false);
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
  for (const t of trainedPromptsOf(config)) {
    r[`curve:${key(t.id)}`] = out(id(t.id), 'curve');
    r[`nearestTokens:${key(t.id)}`] = out(id(t.id), 'nearestTokens');
    if (t.stage === 'dro-train') r[`shift:${key(t.id)}`] = out(id(t.id), 'shift');
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
  checkTrainingSetup(config, inputs);
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
  // Every trained prompt is compared with the text prompt it started from, on the same held-out queries.
  const comparisons = conditionsOf(config).filter((c) => c.softFrom !== null).map((c) => ({ condition: c.id, against: c.promptId }));
  nodes.push({ id: reportNode, stage: 'report', params: stageParams(config, 'report', { title: `DRO report — ${config.name}`, comparisons }), inputs: report, model: null });
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
