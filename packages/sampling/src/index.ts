export * from './judge.ts';
export * from './judge-file.ts';
