/**
 * The code version recorded in every manifest: the git commit of the running source and whether the
 * work tree had uncommitted changes. Computed once per process (git status is not free) and null when
 * there is no git (a tarball install); DRO_GIT_SHA overrides it for deployed workers built without .git.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface CodeVersion {
  gitSha: string | null;
  dirty: boolean;
}

let cached: CodeVersion | undefined;

function git(args: string[], cwd: string): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 15_000 }).trim();
}

export function codeVersion(): CodeVersion {
  if (cached) return cached;
  const fromEnv = process.env.DRO_GIT_SHA;
  if (fromEnv) {
    cached = { gitSha: fromEnv, dirty: process.env.DRO_GIT_DIRTY === '1' };
    return cached;
  }
  const sourceDir = fileURLToPath(new URL('.', import.meta.url));
  try {
    const gitSha = git(['rev-parse', 'HEAD'], sourceDir);
    const dirty = git(['status', '--porcelain', '--untracked-files=no'], sourceDir) !== '';
    cached = { gitSha, dirty };
  } catch {
    cached = { gitSha: null, dirty: false };
  }
  return cached;
}
