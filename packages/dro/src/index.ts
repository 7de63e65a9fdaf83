/** @dro/dro: DRO soft-prompt training, its ablations, and the vanilla prompt-tuning baseline. */
export * from './loss.ts';
export * from './adamw.ts';
export * from './soft-prompt.ts';
export * from './soft-prompt-training.ts';
export * from './train-dro.ts';
export * from './nearest.ts';
export * from './inputs.ts';
export * from './params.ts';
export { droTrainStage } from './stage.ts';
export { promptTuningStage } from './prompt-tuning-stage.ts';
export * from './prompt-tuning.ts';
