/** Every stage the DRO experiment uses, in one registry: the local runner, workers and `dro stages` share it. */
import { dataPrepStage } from '@dro/data-prep';
import { directionsStage } from '@dro/directions';
import { droTrainStage, promptTuningStage } from '@dro/dro';
import { evaluateStage, referenceAnswersStage, reportStage } from '@dro/evaluate';
import { extractStage } from '@dro/extract';
import { StageRegistry } from '@dro/pipeline';
import { refusalLogprobStage, samplingStage } from '@dro/sampling';

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
    evaluateStage,
    reportStage,
  ] as never[]);
}
