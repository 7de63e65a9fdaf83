/**
 * Which stage plugins a process loads from a DAG it did not write. A Temporal worker imports — that is,
 * runs — the module a workflow's DAG names (DagNode.plugin), and whoever can start a workflow on its
 * namespace writes that DAG; so a worker loads a DAG's plugin only when its allowlist admits it, checked
 * before the module is read or imported (loadDagPlugins / resolveNodeStage with `allow`). The local runner
 * passes no allowlist: there the DAG comes from the user's own config.
 *
 *   directory  admits a path plugin whose real path (symlinks resolved, "." and ".." gone) lies inside it;
 *              a symlink inside it that points outside does not count as inside
 *   package    admits a package plugin of that name, any subpath of it ("." / ".." segments are never a
 *              package specifier); it resolves from the DAG's resolveFrom, as without an allowlist
 */
import fs from 'node:fs';
import path from 'node:path';
import { BadInputError, resolveUserPath } from '@dro/artifacts';
import type { StagePluginSource } from './stage.ts';
import { isPackageSpecifier, packageNameOf, pluginLabel } from './plugin-module.ts';

export interface PluginAllowlist {
  /** Real paths of the directories whose plugins may load. */
  dirs: readonly string[];
  /** Names of the packages whose plugins may load. */
  packages: readonly string[];
}

/** Nothing: the allowlist of a worker that was given none. */
export const NO_PLUGINS: PluginAllowlist = Object.freeze({ dirs: Object.freeze([]), packages: Object.freeze([]) });

/**
 * A comma list of directories and package names (`dro worker --allow-plugins` / DRO_WORKER_PLUGINS): an
 * entry starting with "/", "./", "../" or "~" is a directory (relative to `baseDir`) that must exist;
 * anything else must be a package name. Errors name `from` and the entry; "" is the empty list.
 */
export function parsePluginAllowlist(raw: string, from: string, baseDir = process.cwd()): PluginAllowlist {
  const dirs: string[] = [];
  const packages: string[] = [];
  for (const entry of raw.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    if (entry === '~' || entry.startsWith('~/') || !isPackageSpecifier(entry)) {
      const dir = resolveUserPath(entry, baseDir);
      let real: string;
      try {
        real = fs.realpathSync(dir);
      } catch (error) {
        throw new BadInputError(`${from}: "${entry}": cannot read the directory ${dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
      if (!fs.statSync(real).isDirectory()) throw new BadInputError(`${from}: "${entry}": ${real} is not a directory`);
      if (!dirs.includes(real)) dirs.push(real);
    } else {
      if (packageNameOf(entry) !== entry) {
        throw new BadInputError(`${from}: "${entry}": expected a directory (starting with "/", "./", "../" or "~") or a package name ("my-judge", "@lab/judge")`);
      }
      if (!packages.includes(entry)) packages.push(entry);
    }
  }
  return { dirs, packages };
}

/** "none", or the allowed directories and packages, comma-separated. */
export function describePluginAllowlist(allow: PluginAllowlist): string {
  const all = [...allow.dirs, ...allow.packages];
  return all.length === 0 ? 'none' : all.join(', ');
}

/**
 * The real path of `file` (absolute): symlinks resolved; for a path that does not exist (yet), its
 * nearest existing ancestor's real path plus the rest. Null when it cannot be resolved (a symlink loop, a
 * directory that cannot be read): such a path is never admitted.
 */
export function realPathOf(file: string): string | null {
  try {
    return fs.realpathSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') return null;
    const abs = path.resolve(file);
    const parent = path.dirname(abs);
    if (parent === abs) return null;
    const realParent = realPathOf(parent);
    return realParent === null ? null : path.join(realParent, path.basename(abs));
  }
}

/** Whether `file` lies strictly inside directory `dir` (both real, absolute paths). */
export function isInsideDir(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !path.isAbsolute(rel) && rel.split(path.sep)[0] !== '..';
}

/**
 * Throws a BadInputError unless `allow` admits the plugin `source`; it reads no more than the file
 * system's links (never the module). The message says how to allow it.
 */
export function assertPluginAllowed(source: StagePluginSource, allow: PluginAllowlist): void {
  const module = source.module;
  const packageSpec = typeof module === 'string' && isPackageSpecifier(module);
  let real: string | null = null;
  if (packageSpec) {
    const name = packageNameOf(module);
    if (name !== null && allow.packages.includes(name)) return;
  } else if (typeof module === 'string' && path.isAbsolute(module)) {
    real = realPathOf(module);
    if (real !== null && allow.dirs.some((dir) => isInsideDir(dir, real!))) return;
  }
  const how = packageSpec ? `dro worker --allow-plugins ${packageNameOf(module) ?? 'PACKAGE'}` : 'dro worker --allow-plugins DIR';
  const realNote = real !== null && real !== module ? ` (real path ${real})` : '';
  throw new BadInputError(
    `stage plugin ${typeof module === 'string' ? pluginLabel(source) : JSON.stringify(module)}${realNote} is not allowed on this worker (${how} or DRO_WORKER_PLUGINS); allowed: ${describePluginAllowlist(allow)}`,
  );
}
