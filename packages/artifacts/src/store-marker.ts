/**
 * How a directory is recognised as a DRO store: a marker file at its root, written when the store is
 * created, naming the format and its version. gc and every writer require it, so a mistyped `--store`
 * (a git repository's .git, whose loose objects look content-addressed; a home directory) is refused
 * before anything is written or deleted.
 *
 *   missing      the root does not exist          writers create it with the marker
 *   empty        exists, holds nothing (or only   writers add the marker
 *                our temp files, lost+found)
 *   store        marker of this format, version   read, written, collected
 *                this code knows
 *   legacy       no marker, but exactly the       read only; `dro verify --adopt` re-hashes it and
 *                layout stores had before markers  writes the marker
 *   foreign      anything else                    refused by writers, gc and verify
 *   unsupported  a marker that is unreadable, of  refused by writers and gc
 *                another format or a newer version
 */
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { NotAStoreError } from './errors.ts';
import { describeFsError, fsErrorCode } from './fs-errors.ts';
import { isTempName, makeDirectory, writeFileAtomic } from './atomic-fs.ts';

export const STORE_MARKER = 'dro-store.json';
export const STORE_FORMAT = 'dro-artifact-store';
/** Bump when the layout changes in a way older code must not write to. */
export const STORE_FORMAT_VERSION = 1;

export interface StoreMarker {
  format: typeof STORE_FORMAT;
  version: number;
  createdAt: string;
}

export type StoreKind =
  | { kind: 'store'; marker: StoreMarker }
  | { kind: 'missing' }
  | { kind: 'empty' }
  | { kind: 'legacy' }
  | { kind: 'foreign'; examples: string[] }
  | { kind: 'unsupported'; reason: string };

/** The top-level directories of the layout (store.ts documents what each holds). */
export const STORE_DIRS = ['objects', 'manifests', 'records', 'reports'] as const;

const DIGEST = /^[0-9a-f]{64}$/;
const SHARD = /^[0-9a-f]{2}$/;
const RECORD_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.json$/;
/** Report pages and the temp names the report writer used before markers existed (<digest>.html.<pid>.tmp). */
const REPORT_FILE = /^[0-9a-f]{64}\.html(\.\d+\.tmp)?$/;

async function readMarker(file: string): Promise<StoreKind> {
  let text: string;
  try {
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      if (!(await handle.stat()).isFile()) return { kind: 'unsupported', reason: `${file} is not a regular file` };
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (fsErrorCode(error) === 'ELOOP') return { kind: 'unsupported', reason: `${file} is a symbolic link` };
    throw describeFsError(error, 'read', file);
  }
  return parseStoreMarker(text, file);
}

/** What a marker's text says (`file`: where it was read, for messages): this format and version, or why not. */
export function parseStoreMarker(text: string, file: string): StoreKind {
  let marker: Partial<StoreMarker>;
  try {
    marker = JSON.parse(text) as Partial<StoreMarker>;
  } catch (error) {
    return { kind: 'unsupported', reason: `${file} is not valid JSON (${(error as Error).message})` };
  }
  if (marker?.format !== STORE_FORMAT) return { kind: 'unsupported', reason: `${file} names format ${JSON.stringify(marker?.format)}, not ${STORE_FORMAT}` };
  if (marker.version !== STORE_FORMAT_VERSION) {
    return { kind: 'unsupported', reason: `${file} is store format version ${JSON.stringify(marker.version)}; this dro reads and writes version ${STORE_FORMAT_VERSION} (use the dro that made it)` };
  }
  return { kind: 'store', marker: marker as StoreMarker };
}

/**
 * Whether an unmarked directory has exactly the layout the store wrote before markers: only the four
 * top-level directories, digest-named files in two-hex-digit shards that match their prefix, record
 * files under namespaces, report pages — and temp files. Up to 3 offending paths otherwise.
 */
async function legacyLayoutProblems(root: string, names: string[]): Promise<string[]> {
  const problems: string[] = [];
  const isDir = async (p: string) => (await lstat(p).catch(() => null))?.isDirectory() ?? false;
  const children = async (dir: string) => readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (problems.length >= 3) break;
    const top = path.join(root, name);
    if (!(STORE_DIRS as readonly string[]).includes(name) || !(await isDir(top))) {
      problems.push(top);
      continue;
    }
    for (const child of await children(top)) {
      const sub = path.join(top, child);
      if (isTempName(child)) continue;
      if (name === 'reports') {
        if (!REPORT_FILE.test(child)) problems.push(sub);
        continue;
      }
      if (name === 'records' ? !RECORD_FILE.test(`${child}.json`) || !(await isDir(sub)) : !SHARD.test(child) || !(await isDir(sub))) {
        problems.push(sub);
        continue;
      }
      for (const file of await children(sub)) {
        if (isTempName(file)) continue;
        const ok =
          name === 'objects' ? DIGEST.test(file) && file.startsWith(child)
          : name === 'manifests' ? file.endsWith('.json') && DIGEST.test(file.slice(0, -5)) && file.startsWith(child)
          : RECORD_FILE.test(file);
        if (!ok) problems.push(path.join(sub, file));
        if (problems.length >= 3) break;
      }
      if (problems.length >= 3) break;
    }
  }
  return problems;
}

/** What `root` is (see the table above). Reads only. */
export async function inspectStoreRoot(root: string): Promise<StoreKind> {
  let names: string[];
  try {
    const info = await lstat(root).catch(async (error: unknown) => {
      if (fsErrorCode(error) === 'ENOENT') return null;
      throw error;
    });
    if (!info) return { kind: 'missing' };
    names = await readdir(root);
  } catch (error) {
    if (fsErrorCode(error) === 'ENOTDIR') return { kind: 'foreign', examples: [root] };
    throw describeFsError(error, 'inspect store', root);
  }
  if (names.includes(STORE_MARKER)) return readMarker(path.join(root, STORE_MARKER));
  // lost+found: the root of a freshly made filesystem (a new shared mount) holds it and nothing else.
  const kept = names.filter((name) => !isTempName(name) && name !== 'lost+found');
  if (kept.length === 0) return { kind: 'empty' };
  const problems = await legacyLayoutProblems(root, kept);
  if (problems.length === 0 && kept.some((name) => name !== 'reports')) return { kind: 'legacy' };
  return { kind: 'foreign', examples: problems.length > 0 ? problems : kept.slice(0, 3).map((n) => path.join(root, n)) };
}

/** The error for a root that may not be written or collected, saying what it is and what to do. */
export function notAStoreError(root: string, found: StoreKind, action: string): NotAStoreError {
  switch (found.kind) {
    case 'legacy':
      return new NotAStoreError(
        root,
        'legacy',
        `${root} is a DRO store from before store markers (no ${STORE_MARKER}), so dro will not ${action} it. ` +
          `If it is the store you meant, run \`dro verify --store ${root} --adopt\` (re-hashes every artifact, then writes the marker).`,
      );
    case 'foreign':
      if (found.examples[0] === root) return new NotAStoreError(root, 'foreign', `${root} is not a directory, so it is not a DRO store; dro will not ${action} it`);
      return new NotAStoreError(
        root,
        'foreign',
        `${root} is not a DRO store (no ${STORE_MARKER}; it holds ${found.examples.join(', ')}, which a DRO store never has), so dro will not ${action} it. ` +
          'Check --store / DRO_STORE; a new store needs an empty or missing directory.',
      );
    case 'unsupported':
      return new NotAStoreError(root, 'unsupported', `${root} cannot be used as a DRO store: ${found.reason}; dro will not ${action} it`);
    case 'missing':
      return new NotAStoreError(root, 'missing', `${root} does not exist, so there is no DRO store to ${action}`);
    case 'empty':
      return new NotAStoreError(root, 'empty', `${root} is an empty directory, not a DRO store (no ${STORE_MARKER}); there is nothing to ${action}`);
    case 'store':
      throw new Error('unreachable: a marked store is always allowed');
  }
}

/** Write the marker (for a new, empty or adopted store). */
export async function writeStoreMarker(root: string): Promise<void> {
  await writeFileAtomic(path.join(root, STORE_MARKER), storeMarkerText());
}

/** The marker file's content for a store created now. */
export function storeMarkerText(): string {
  const marker: StoreMarker = { format: STORE_FORMAT, version: STORE_FORMAT_VERSION, createdAt: new Date().toISOString() };
  return `${JSON.stringify(marker, null, 2)}\n`;
}

/** Before the first write: accept a marked store, create a new one, refuse everything else. */
export async function prepareStoreForWriting(root: string): Promise<void> {
  const found = await inspectStoreRoot(root);
  if (found.kind === 'store') return;
  if (found.kind === 'missing' || found.kind === 'empty') {
    await makeDirectory(root);
    await writeStoreMarker(root);
    return;
  }
  throw notAStoreError(root, found, 'write to');
}

/** For gc and other destructive maintenance: only a marked store of this version. */
export async function assertMarkedStore(root: string, action: string): Promise<void> {
  const found = await inspectStoreRoot(root);
  if (found.kind !== 'store') throw notAStoreError(root, found, action);
}
