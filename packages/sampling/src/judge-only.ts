/**
 * The judge without the model runtime: `@dro/sampling/judge` loads no tfjs, so `dro judge` starts fast
 * and works wherever the runtime cannot load.
 */
export * from './judge.ts';
export * from './judge-file.ts';
