export * from './query-files.ts';
export * from './import.ts';
export * from './render.ts';
export * from './params.ts';
export * from './stage.ts';
