/**
 * The native backend's resolver reads $DRO_CACHE through @dro/artifacts' droCacheDir, "~" included: a literal
 * "~/cache/native-tf" relative to the working directory would silently fall back to wasm. (It is plain ESM
 * that tools/native-tf/setup-native-tf.mjs imports too, so it cannot share paths.ts's TypeScript.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeTfDir } from '../src/native/tfjs-node.mjs';

const saved = { HOME: process.env.HOME, DRO_CACHE: process.env.DRO_CACHE };
afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe('one reading of $DRO_CACHE', () => {
  it('the native TensorFlow resolver reads it through droCacheDir, "~" included', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-home-'));
    try {
      process.env.HOME = home;
      process.env.DRO_CACHE = '~/cache';
      expect(nativeTfDir()).toBe(path.join(home, 'cache', 'native-tf'));
      delete process.env.DRO_CACHE;
      expect(nativeTfDir()).toBe(path.join(home, '.cache', 'dro', 'native-tf'));
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
