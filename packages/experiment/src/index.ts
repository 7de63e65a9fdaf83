export * from './config.ts';
export * from './presets/index.ts';
export * from './dag.ts';
export * from './inputs.ts';
export * from './row-needs.ts';
export * from './stages.ts';
export * from './summary.ts';
export * from './run.ts';
