/** The device top-k sampling path against the host path on the wasm backend (see candidate-parity.ts). */
import { beforeAll, describe, expect } from 'vitest';
import { initBackend } from '../src/index.ts';
import { registerCandidateParityTests } from './candidate-parity.ts';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('generate on wasm: device top-k path = host path', () => {
  registerCandidateParityTests(() => ['eager']);
});
