/**
 * The one home for the paths DRO uses by default and for reading paths users write. Every path that comes
 * from a user — a config file's fields, `--store`, `--model`, `--config`, `--out`, `$DRO_STORE`,
 * `$DRO_CACHE` — goes through `resolveUserPath`, so `~` means the same thing everywhere. (A shell expands
 * `~` only at the start of an unquoted word: `--store=~/x`, `"~/x"` and JSON strings reach us literally.)
 *
 * This lives in @dro/artifacts because it is the package every other one depends on. The known models'
 * paths (and the default model) live with their pins in @dro/llm's weights/known-models.mjs.
 */
import os from 'node:os';
import path from 'node:path';

/** The home directory `~` stands for ($HOME when set, as shells do; else the OS's record). */
function homeDir(): string {
  return process.env.HOME || os.homedir();
}

/**
 * `~` → the home directory, `~/rest` → home/rest. Anything else (including `~user/…`, which would need
 * the passwd database, and a `~` inside a path) is returned unchanged.
 */
export function expandHome(p: string): string {
  if (p === '~') return homeDir();
  if (p.startsWith('~/') || (path.sep === '\\' && p.startsWith('~\\'))) return path.join(homeDir(), p.slice(2));
  return p;
}

/** A user-written path as an absolute path: `~` expanded, relative paths resolved against `baseDir`. */
export function resolveUserPath(p: string, baseDir: string = process.cwd()): string {
  const expanded = expandHome(p);
  return path.isAbsolute(expanded) ? path.normalize(expanded) : path.resolve(baseDir, expanded);
}

/** An environment variable holding a path, resolved like a user-written path; undefined when unset or empty. */
function envPath(name: string): string | undefined {
  const value = process.env[name];
  return value ? resolveUserPath(value) : undefined;
}

/** Downloaded assets (models, Temporal binaries, native TensorFlow, digest sidecars): $DRO_CACHE, default ~/.cache/dro. */
export function droCacheDir(): string {
  return envPath('DRO_CACHE') ?? path.join(homeDir(), '.cache', 'dro');
}

/**
 * Where the store lives when no root is given: $DRO_STORE, else `.dro/store` under the current directory
 * (a per-checkout store, git-ignored, like .git). Point DRO_STORE at a shared mount to share across machines.
 */
export function defaultStoreRoot(): string {
  return envPath('DRO_STORE') ?? path.resolve('.dro', 'store');
}

/** The repository's data/ directory: the project's query sets, safety prompts and refusal phrases. */
export function repoDataDir(): string {
  return path.resolve(import.meta.dirname, '..', '..', '..', 'data');
}
