/**
 * A worker's stage plugin allowlist: which DAG-named modules it admits (real paths inside an allowed
 * directory, listed package names), checked before the module is read or imported — on real files,
 * symlinks and `..` paths, with modules that record it when they are imported.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import {
  NO_PLUGINS,
  assertPluginAllowed,
  describePluginAllowlist,
  isInsideDir,
  loadDagPlugins,
  parsePluginAllowlist,
  resolveNodeStage,
  type Dag,
  type PluginAllowlist,
  type StagePluginRef,
} from '../src/index.ts';
import { testStages } from './fixtures/stages.ts';
import { makeTempDir } from './helpers.ts';

const temp = makeTempDir('plugin-allowlist');
afterAll(temp.cleanup);
const root = fs.realpathSync(temp.dir);
const allowedDir = path.join(root, 'allowed');
const outsideDir = path.join(root, 'outside');
const siblingDir = path.join(root, 'allowed-evil');
for (const dir of [allowedDir, path.join(allowedDir, 'nested'), outsideDir, siblingDir]) fs.mkdirSync(dir, { recursive: true });

declare global {
  var __droAllowlistImports: string[] | undefined;
}
/** A plugin replacing `scale` that records its own path in a global when it is imported. */
const PLUGIN = `(globalThis.__droAllowlistImports ??= []).push(new URL(import.meta.url).pathname);
export default {
  name: 'scale', version: '1', needs: 'cpu', inputs: ['numbers'], outputs: ['scaled'],
  outputSchemas: { scaled: 'test-numbers/v1' },
  async run() { throw new Error('not run here'); },
};
`;
const insidePlugin = path.join(allowedDir, 'plugin.mjs');
const nestedPlugin = path.join(allowedDir, 'nested', 'plugin.mjs');
const outsidePlugin = path.join(outsideDir, 'plugin.mjs');
const siblingPlugin = path.join(siblingDir, 'plugin.mjs');
for (const file of [insidePlugin, nestedPlugin, outsidePlugin, siblingPlugin]) fs.writeFileSync(file, PLUGIN);
// Inside the allowed directory, pointing outside: a file link and a directory link.
const fileLinkOut = path.join(allowedDir, 'link.mjs');
fs.symlinkSync(outsidePlugin, fileLinkOut);
fs.symlinkSync(outsideDir, path.join(allowedDir, 'out'));
const dirLinkOut = path.join(allowedDir, 'out', 'plugin.mjs');
// Inside, pointing inside.
const fileLinkIn = path.join(allowedDir, 'nested', 'link-in.mjs');
fs.symlinkSync(insidePlugin, fileLinkIn);
const dotDotOut = `${allowedDir}/../outside/plugin.mjs`;
const allowDir: PluginAllowlist = { dirs: [allowedDir], packages: [] };

const identity = `sha256:${crypto.createHash('sha256').update(PLUGIN).digest('hex')}`;
const ref = (module: string): StagePluginRef => ({ module, identity });
function scaleDag(plugin: StagePluginRef): Dag {
  return {
    name: 'allowlist-test',
    nodes: [
      { id: 'numbers', stage: 'numbers', params: { count: 3 }, inputs: {} },
      { id: 'scale', stage: 'scale', params: {}, inputs: { numbers: { node: 'numbers', output: 'numbers' } }, plugin },
    ],
  };
}
const imported = () => [...(globalThis.__droAllowlistImports ?? [])];

describe('parsePluginAllowlist', () => {
  it('reads directories as real paths and package names, drops repeats and blanks', () => {
    fs.symlinkSync(allowedDir, path.join(root, 'allowed-link'));
    expect(parsePluginAllowlist(' ./allowed-link, @lab/judge,,my-judge, ' + allowedDir + ',my-judge', 'DRO_WORKER_PLUGINS', root)).toEqual({
      dirs: [allowedDir],
      packages: ['@lab/judge', 'my-judge'],
    });
    expect(parsePluginAllowlist('', '--allow-plugins')).toEqual({ dirs: [], packages: [] });
    expect(describePluginAllowlist(parsePluginAllowlist(`${allowedDir},my-judge`, 'x'))).toBe(`${allowedDir}, my-judge`);
    expect(describePluginAllowlist(NO_PLUGINS)).toBe('none');
  });

  it('refuses a missing directory, a file, and an entry that is neither a directory nor a package name, naming where it came from', () => {
    const bad = (raw: string) => () => parsePluginAllowlist(raw, '--allow-plugins', root);
    expect(bad('./missing')).toThrow(BadInputError);
    expect(bad('./missing')).toThrow(`--allow-plugins: "./missing": cannot read the directory ${path.join(root, 'missing')} (ENOENT)`);
    expect(bad(insidePlugin)).toThrow(`--allow-plugins: "${insidePlugin}": ${insidePlugin} is not a directory`);
    for (const entry of ['plugins/', '@lab/judge/strict', 'my-judge/../other', 'My Judge']) {
      expect(bad(entry)).toThrow(`--allow-plugins: "${entry}": expected a directory (starting with "/", "./", "../" or "~") or a package name`);
    }
  });
});

describe('assertPluginAllowed', () => {
  const allowed = (module: string, allow: PluginAllowlist = allowDir) => {
    try {
      assertPluginAllowed({ module }, allow);
      return true;
    } catch (error) {
      if (!(error instanceof BadInputError)) throw error;
      return false;
    }
  };

  it('admits a path whose real path lies inside an allowed directory', () => {
    expect(allowed(insidePlugin)).toBe(true);
    expect(allowed(nestedPlugin)).toBe(true);
    expect(allowed(fileLinkIn)).toBe(true);
    expect(allowed(`${allowedDir}/nested/../plugin.mjs`)).toBe(true);
    // Not there (yet): the check passes, and loading it then reports the missing file.
    expect(allowed(path.join(allowedDir, 'not-yet.mjs'))).toBe(true);
  });

  it('refuses a path outside: through a file or directory symlink, through "..", a sibling with the same prefix, relative', () => {
    for (const module of [outsidePlugin, fileLinkOut, dirLinkOut, dotDotOut, siblingPlugin, path.join(allowedDir, 'out', 'not-yet.mjs'), 'allowed/plugin.mjs', './plugin.mjs', allowedDir]) {
      expect(allowed(module), module).toBe(false);
    }
    expect(() => assertPluginAllowed({ module: fileLinkOut }, allowDir)).toThrow(
      `stage plugin ${fileLinkOut} (real path ${outsidePlugin}) is not allowed on this worker (dro worker --allow-plugins DIR or DRO_WORKER_PLUGINS); allowed: ${allowedDir}`,
    );
  });

  it('refuses everything with the empty allowlist, saying how to allow it', () => {
    expect(allowed(insidePlugin, NO_PLUGINS)).toBe(false);
    expect(() => assertPluginAllowed({ module: insidePlugin }, NO_PLUGINS)).toThrow(
      `stage plugin ${insidePlugin} is not allowed on this worker (dro worker --allow-plugins DIR or DRO_WORKER_PLUGINS); allowed: none`,
    );
    expect(() => assertPluginAllowed({ module: '@lab/judge/strict', resolveFrom: root }, NO_PLUGINS)).toThrow(
      `stage plugin package "@lab/judge/strict" (from ${root}) is not allowed on this worker (dro worker --allow-plugins @lab/judge or DRO_WORKER_PLUGINS); allowed: none`,
    );
  });

  it('admits a listed package and its subpaths, nothing that steps out of it', () => {
    const allow: PluginAllowlist = { dirs: [], packages: ['@lab/judge', 'my-judge'] };
    for (const module of ['@lab/judge', '@lab/judge/strict', 'my-judge', 'my-judge/lib/index.js']) expect(allowed(module, allow), module).toBe(true);
    for (const module of ['@lab/other', '@lab/judge-x', 'my-judge/../other', 'my-judge/./x', '@lab/judge/..', 'other', insidePlugin]) expect(allowed(module, allow), module).toBe(false);
  });

  it('isInsideDir is strict: the directory itself and its parent are not inside', () => {
    expect(isInsideDir('/a/b', '/a/b/c')).toBe(true);
    expect(isInsideDir('/a/b', '/a/b/..c')).toBe(true);
    expect(isInsideDir('/a/b', '/a/b')).toBe(false);
    expect(isInsideDir('/a/b', '/a/bc/d')).toBe(false);
    expect(isInsideDir('/a/b', '/a')).toBe(false);
  });
});

describe('loading a DAG\'s plugins with an allowlist', () => {
  it('refuses before importing, even a plugin this process has loaded, and imports an admitted one', async () => {
    const before = imported();
    await expect(loadDagPlugins(scaleDag(ref(insidePlugin)), testStages, { allow: NO_PLUGINS })).rejects.toThrow(
      `DAG "allowlist-test": node "scale": stage plugin ${insidePlugin} is not allowed on this worker (dro worker --allow-plugins DIR or DRO_WORKER_PLUGINS); allowed: none`,
    );
    for (const module of [fileLinkOut, dirLinkOut, dotDotOut, outsidePlugin]) {
      await expect(loadDagPlugins(scaleDag(ref(module)), testStages, { allow: allowDir }), module).rejects.toThrow('is not allowed on this worker');
      await expect(resolveNodeStage(testStages, scaleDag(ref(module)).nodes[1]!, { allow: allowDir }), module).rejects.toThrow('is not allowed on this worker');
    }
    expect(imported()).toEqual(before);

    await loadDagPlugins(scaleDag(ref(insidePlugin)), testStages, { allow: allowDir });
    expect(imported()).toEqual([...before, insidePlugin]);
    // Loaded in this process now: the allowlist still comes first.
    await expect(resolveNodeStage(testStages, scaleDag(ref(insidePlugin)).nodes[1]!, { allow: NO_PLUGINS })).rejects.toThrow('allowed: none');
    // Without an allowlist (the local runner) any plugin loads, as before.
    await loadDagPlugins(scaleDag(ref(outsidePlugin)), testStages);
    expect(imported()).toEqual([...before, insidePlugin, outsidePlugin]);
  });
});
