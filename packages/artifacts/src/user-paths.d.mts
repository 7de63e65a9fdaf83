/** Types for user-paths.mjs (`~` expansion and the asset cache directory; see paths.ts). */
export function expandHome(p: string): string;
export function resolveUserPath(p: string, baseDir?: string): string;
export function envPath(name: string): string | undefined;
export function droCacheDir(): string;
