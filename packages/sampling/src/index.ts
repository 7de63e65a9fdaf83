export * from './judge.ts';
export * from './judge-file.ts';
export * from './params.ts';
export * from './llm-judge.ts';
export * from './stage.ts';
export * from './refusal-logprob.ts';
