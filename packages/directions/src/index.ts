export * from './pca.ts';
export * from './logistic.ts';
export * from './params.ts';
export * from './stage.ts';
export { gaussian } from './random.ts';
