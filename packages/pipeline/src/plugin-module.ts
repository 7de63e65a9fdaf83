/**
 * Where a stage plugin's code is and what identifies it. A plugin is an ES module named by an absolute
 * path or by a package name:
 *
 *   path     identity = "sha256:" + the sha256 of the module file when it imports no local file, else of
 *            the list of (relative path, sha256) of the file and every local file it imports, transitively
 *            (found by esbuild, which resolves them as Node and tsx do: ".js" → ".ts", index files).
 *            Not covered: files the plugin reads at run time (fs, `new URL(…, import.meta.url)`), imports
 *            with computed specifiers, and the packages it imports (those resolve to the installed
 *            versions, like the DRO packages themselves).
 *   package  identity = "<name>@<version>" from the package's package.json, resolved from `resolveFrom`
 *            (node_modules lookup upward) with Node's ESM conditions. Editing an installed package without
 *            bumping its version is not seen.
 *
 * The identity is part of the cache key of every node the plugin runs, so a changed identity re-runs
 * exactly those nodes (and whatever their changed outputs feed).
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Message } from 'esbuild';
import { BadInputError, canonicalJson, sha256Hex } from '@dro/artifacts';
import type { StagePluginSource } from './stage.ts';

export interface PluginModule {
  /** The file Node imports: the module file, or the package's entry. */
  file: string;
  /** What to import. For a path it carries the identity, so a long-lived process loads an edited file afresh. */
  url: string;
  identity: string;
  /** Local files the module imports, transitively (absolute path → sha256); empty for a package. */
  imports: Map<string, string>;
}

/** How a plugin is named in errors: its path, or "package NAME (from DIR)". */
export function pluginLabel(source: StagePluginSource): string {
  return isPackageSpecifier(source.module) ? `package "${source.module}" (from ${source.resolveFrom ?? process.cwd()})` : source.module;
}

/** A module named like a package ("my-judge", "@lab/judge/strict") rather than a path (".", "/"). */
export function isPackageSpecifier(module: string): boolean {
  return !module.startsWith('.') && !path.isAbsolute(module);
}

/** A package name and an optional subpath; no "." or ".." segment (it would step out of the package). */
const PACKAGE_SPECIFIER = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._~@-]+)*$/;

/** The package a specifier names ("@lab/judge/strict" → "@lab/judge"), or null when it is not a package specifier. */
export function packageNameOf(spec: string): string | null {
  if (!isPackageSpecifier(spec) || !PACKAGE_SPECIFIER.test(spec)) return null;
  return spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
}

/** Resolution resembling Node's `import`: the "import"/"node"/"default" conditions and "main", nothing else. */
const NODE_LIKE: BuildOptions = { platform: 'node', format: 'esm', conditions: [], mainFields: ['main'], write: false, logLevel: 'silent' };

export async function resolvePluginModule(source: StagePluginSource): Promise<PluginModule> {
  const where = `stage plugin ${pluginLabel(source)}`;
  if (typeof source.module !== 'string' || source.module === '') throw new BadInputError(`stage plugin: "module" must be a path or a package name, got ${JSON.stringify(source.module)}`);
  const module = isPackageSpecifier(source.module) ? await resolvePackage(source, where) : await resolveFile(source.module, where);
  assertEsm(module.file, where);
  return module;
}

async function resolveFile(module: string, where: string): Promise<PluginModule> {
  if (!path.isAbsolute(module)) throw new BadInputError(`${where}: a path must be absolute here (configs resolve it against their own directory)`);
  let file: string;
  try {
    file = fs.realpathSync(module);
    if (!fs.statSync(file).isFile()) throw new BadInputError(`${where}: not a file`);
  } catch (error) {
    if (error instanceof BadInputError) throw error;
    throw new BadInputError(`${where}: cannot read the module (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); a plugin path must exist on every machine that runs its stage`);
  }
  const imports = new Map<string, string>();
  for (const f of await localImports(file, where)) if (f !== file) imports.set(f, hashFile(f, where));
  const own = hashFile(file, where);
  const listing = Object.fromEntries([...imports].map(([f, hash]) => [path.relative(path.dirname(file), f).split(path.sep).join('/'), hash]));
  const identity = `sha256:${imports.size === 0 ? own : sha256Hex(canonicalJson({ module: own, imports: listing }))}`;
  return { file, url: `${pathToFileURL(file).href}?dro-plugin=${identity.slice('sha256:'.length, 'sha256:'.length + 16)}`, identity, imports };
}

function hashFile(file: string, where: string): string {
  try {
    return sha256Hex(fs.readFileSync(file));
  } catch (error) {
    throw new BadInputError(`${where}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

function firstError(errors: Message[] | undefined, fallback: unknown): string {
  const e = errors?.[0];
  if (!e) return fallback instanceof Error ? fallback.message : String(fallback);
  return e.location ? `${e.text} (${e.location.file}:${e.location.line}:${e.location.column})` : e.text;
}

/** The module file and every local file it imports statically (packages stay outside), absolute paths. */
async function localImports(file: string, where: string): Promise<string[]> {
  const dir = path.dirname(file);
  try {
    const result = await build({ ...NODE_LIKE, entryPoints: [file], absWorkingDir: dir, bundle: true, metafile: true, packages: 'external' });
    return Object.keys(result.metafile.inputs).map((p) => path.resolve(dir, p)).filter((p) => fs.existsSync(p));
  } catch (error) {
    throw new BadInputError(`${where}: cannot be loaded: ${firstError((error as { errors?: Message[] }).errors, error)}`);
  }
}

async function resolvePackage(source: StagePluginSource, where: string): Promise<PluginModule> {
  const spec = source.module;
  const name = packageNameOf(spec);
  if (name === null) throw new BadInputError(`${where}: not a package name (a path must start with "./", "../" or "/")`);
  const from = source.resolveFrom ?? process.cwd();
  let resolved: { path: string; errors: Message[] } | undefined;
  await build({
    ...NODE_LIKE,
    stdin: { contents: '' },
    plugins: [{ name: 'dro-resolve-plugin', setup: (b) => b.onStart(async () => void (resolved = await b.resolve(spec, { kind: 'import-statement', resolveDir: from }))) }],
  });
  if (!resolved?.path) throw new BadInputError(`${where}: cannot be resolved (${firstError(resolved?.errors, 'not found')}); install it where it resolves on every machine that runs its stage`);
  const manifest = packageJsonOf(resolved.path, name);
  if (!manifest || typeof manifest.version !== 'string' || manifest.version === '') {
    throw new BadInputError(`${where}: found ${resolved.path} but no package.json with "name": "${name}" and a "version" above it`);
  }
  return { file: resolved.path, url: pathToFileURL(resolved.path).href, identity: `${name}@${manifest.version}`, imports: new Map() };
}

/** The package.json of package `name` that contains `file` (walking up). */
function packageJsonOf(file: string, name: string): { version?: unknown } | null {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      try {
        const json = JSON.parse(fs.readFileSync(candidate, 'utf8')) as { name?: unknown; version?: unknown };
        if (json.name === name) return json;
      } catch {
        // not a readable package.json: keep walking up
      }
    }
    if (path.dirname(dir) === dir) return null;
  }
}

/**
 * A plugin must load as an ES module: loaded as CommonJS (a .ts/.js file without "type": "module" in its
 * nearest package.json), its `require`s would get their own copies of the DRO packages — a second schema
 * registry, a second tfjs — instead of the ones the engine runs.
 */
function assertEsm(file: string, where: string): void {
  const ext = path.extname(file);
  if (ext === '.mjs' || ext === '.mts') return;
  const type = ext === '.cjs' || ext === '.cts' ? 'commonjs' : packageTypeOf(path.dirname(file));
  if (type !== 'module') {
    throw new BadInputError(
      `${where}: ${file} would load as CommonJS; a stage plugin must be an ES module (name it .mts / .mjs, or add "type": "module" to its package.json)`,
    );
  }
}

/** The "type" of the nearest package.json (Node's package scope), "commonjs" when there is none. */
function packageTypeOf(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'package.json');
    if (fs.existsSync(candidate)) {
      try {
        const type = (JSON.parse(fs.readFileSync(candidate, 'utf8')) as { type?: unknown }).type;
        return type === 'module' ? 'module' : 'commonjs';
      } catch {
        return 'commonjs';
      }
    }
    if (path.basename(d) === 'node_modules' || path.dirname(d) === d) return 'commonjs';
  }
}
