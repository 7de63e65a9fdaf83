/**
 * Every stage the DRO experiment uses, in one registry: the local runner, workers and `dro stages` share
 * it. A config's "stages" replaces some of them with stage plugins, per experiment (see @dro/pipeline's
 * stage-plugins.ts): the DAG's nodes then name the plugin, and every engine loads it from there.
 */
import { dataPrepStage } from '@dro/data-prep';
import { directionsStage } from '@dro/directions';
import { droTrainStage, promptTuningStage } from '@dro/dro';
import { evalForwardStage, evaluateStage, referenceAnswersStage, reportStage } from '@dro/evaluate';
import { extractStage } from '@dro/extract';
import { BadInputError, StageRegistry, loadStagePlugin, type Dag, type StagePluginRef } from '@dro/pipeline';
import { refusalLogprobStage, samplingStage } from '@dro/sampling';
import type { ExperimentConfig } from './config.ts';

export function droStageRegistry(): StageRegistry {
  return new StageRegistry([
    dataPrepStage,
    samplingStage,
    refusalLogprobStage,
    extractStage,
    directionsStage,
    droTrainStage,
    promptTuningStage,
    referenceAnswersStage,
    evalForwardStage,
    evaluateStage,
    reportStage,
  ] as never[]);
}

/**
 * The config's stage plugins, each loaded and checked against the built-in stage it replaces (errors name
 * the config field, the module and the plugin's field), by the name of the stage they replace.
 */
export async function loadExperimentPlugins(config: Pick<ExperimentConfig, 'stages'>): Promise<Record<string, StagePluginRef>> {
  const registry = droStageRegistry();
  const refs: Record<string, StagePluginRef> = {};
  for (const [name, source] of Object.entries(config.stages ?? {})) {
    try {
      refs[name] = (await loadStagePlugin(name, source, registry)).ref;
    } catch (error) {
      if (error instanceof BadInputError) throw new BadInputError(`config field "stages.${name}": ${error.message}`, { cause: error });
      throw error;
    }
  }
  return refs;
}

/** `dag` with every node of a replaced stage naming its plugin. */
export function withStagePlugins(dag: Dag, plugins: Record<string, StagePluginRef>): Dag {
  return { ...dag, nodes: dag.nodes.map((node) => (plugins[node.stage] ? { ...node, plugin: plugins[node.stage] } : node)) };
}

export interface StageListing {
  name: string;
  /** "built-in", or the plugin's module path / package name. */
  source: string;
  /** The plugin's identity (package@version or sha256:…); null for a built-in stage. */
  identity: string | null;
  version: string;
  needs: string;
  inputs: readonly string[];
  variadicInputs: readonly string[];
  inputSchemas: Readonly<Record<string, string>>;
  outputs: readonly string[];
  outputSchemas: Readonly<Record<string, string>>;
}

/** Every stage an experiment runs (`dro stages --config`): the built-ins, with the config's plugins in their place. */
export async function listStages(config?: Pick<ExperimentConfig, 'stages'>): Promise<StageListing[]> {
  const registry = droStageRegistry();
  const plugins = config ? await loadExperimentPlugins(config) : {};
  const listings: StageListing[] = [];
  for (const builtIn of registry.list()) {
    const ref = plugins[builtIn.name];
    const stage = ref ? (await loadStagePlugin(builtIn.name, ref, registry)).stage : builtIn;
    listings.push({
      name: stage.name,
      source: ref ? ref.module : 'built-in',
      identity: ref?.identity ?? null,
      version: stage.version,
      needs: stage.needs,
      inputs: stage.inputs,
      variadicInputs: stage.variadicInputs ?? [],
      inputSchemas: stage.inputSchemas ?? {},
      outputs: stage.outputs,
      outputSchemas: stage.outputSchemas ?? {},
    });
  }
  return listings;
}
