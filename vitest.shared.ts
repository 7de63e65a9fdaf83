import type { ViteUserConfig } from 'vitest/config';

/** Test settings every package shares: real models and servers are slow to start on 2 cores. */
export const sharedTestConfig: NonNullable<ViteUserConfig['test']> = {
  include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
  testTimeout: 120_000,
  hookTimeout: 300_000,
  pool: 'forks',
  fileParallelism: false,
};
