export * from './params.ts';
export * from './stage.ts';
