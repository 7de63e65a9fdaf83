export * from './params.ts';
export * from './stage.ts';
export { ChunkCheckpoints } from '@dro/pipeline';
