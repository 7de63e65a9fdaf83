/**
 * `~` expansion and the asset cache directory — the part of paths.ts that tools/setup and tools/native-tf
 * need before `npm ci`, so it is plain JavaScript with no imports beyond node:. Everything else imports
 * these through paths.ts (types in user-paths.d.mts).
 */
import os from 'node:os';
import path from 'node:path';

/** The home directory `~` stands for ($HOME when set, as shells do; else the OS's record). */
function homeDir() {
  return process.env.HOME || os.homedir();
}

/**
 * `~` → the home directory, `~/rest` → home/rest. Anything else (including `~user/…`, which would need
 * the passwd database, and a `~` inside a path) is returned unchanged.
 */
export function expandHome(p) {
  if (p === '~') return homeDir();
  if (p.startsWith('~/') || (path.sep === '\\' && p.startsWith('~\\'))) return path.join(homeDir(), p.slice(2));
  return p;
}

/** A user-written path as an absolute path: `~` expanded, relative paths resolved against `baseDir`. */
export function resolveUserPath(p, baseDir = process.cwd()) {
  const expanded = expandHome(p);
  return path.isAbsolute(expanded) ? path.normalize(expanded) : path.resolve(baseDir, expanded);
}

/** An environment variable holding a path, resolved like a user-written path; undefined when unset or empty. */
export function envPath(name) {
  const value = process.env[name];
  return value ? resolveUserPath(value) : undefined;
}

/** Downloaded assets (models, Temporal binaries, native TensorFlow, digest sidecars): $DRO_CACHE, default ~/.cache/dro. */
export function droCacheDir() {
  return envPath('DRO_CACHE') ?? path.join(homeDir(), '.cache', 'dro');
}
