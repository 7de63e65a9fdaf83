/**
 * The one home for the paths DRO uses by default and for reading paths users write. Every path that comes
 * from a user — a config file's fields, `--store`, `--model`, `--config`, `--out`, `$DRO_STORE`,
 * `$DRO_CACHE` — goes through `resolveUserPath`, so `~` means the same thing everywhere. (A shell expands
 * `~` only at the start of an unquoted word: `--store=~/x`, `"~/x"` and JSON strings reach us literally.)
 *
 * This lives in @dro/artifacts because it is the package every other one depends on; `~` expansion and
 * $DRO_CACHE are in user-paths.mjs, which tools/setup and tools/native-tf import too. The known models'
 * paths (and the default model) live with their pins in @dro/llm's weights/known-models.mjs.
 */
import path from 'node:path';
import { envPath } from './user-paths.mjs';

// Plain JavaScript (tools/setup reads them before `npm ci`); re-exported here so there is one import path.
export { droCacheDir, expandHome, resolveUserPath } from './user-paths.mjs';

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
