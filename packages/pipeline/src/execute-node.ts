/**
 * Run ONE DAG node: compute its cache key, return the cached outputs on a hit, otherwise run the stage
 * and record its outputs under the key. This is the whole unit of work of both engines: the local runner
 * calls it per node, and the Temporal activity calls exactly it, so it holds no runner-local state —
 * everything it needs is in the request, everything it remembers is in the store.
 */
import {
  BadInputError,
  CorruptRecordError,
  DigestMismatchError,
  InvalidNameError,
  NotFoundError,
  UnsafeStoreEntryError,
  canonicalJson,
  schemaReadableAs,
  sha256Hex,
  type ArtifactRef,
  type ArtifactStore,
  type RecordIndex,
} from '@dro/artifacts';
import type { DagNode, ProgressEvent, Stage, StageLogger } from './stage.ts';
import { parseNodeParams } from './dag.ts';
import { checkInputs, checkModel, runChecked } from './run-stage.ts';
import type { StageLookup } from './registry.ts';
import { resolveNodeStage } from './stage-plugins.ts';
import { storeForPlugin } from './plugin-store.ts';
import type { ModelCache } from './model-cache.ts';

/** A store that also keeps the cache index (LocalArtifactStore is one). */
export type CachingStore = ArtifactStore & { records: Pick<RecordIndex, 'put' | 'get'> };

/** Record namespace of the cache index: cache key → output refs. */
export const CACHE_NAMESPACE = 'cache';

export interface CacheEntry {
  stage: string;
  version: string;
  /** The stage plugin that made the outputs, when the node names one. */
  plugin?: { module: string; identity: string };
  node: string;
  outputs: Record<string, ArtifactRef>;
  createdAt: string;
}

export interface ExecuteNodeRequest {
  store: CachingStore;
  /** Where to find the node's stage (registry, Map or function; a node's plugin is loaded) ... */
  stages?: StageLookup;
  /** ... or the stage itself (for a node with a plugin: that plugin, as loaded by loadDagPlugins). */
  stage?: Stage<unknown>;
  node: DagNode;
  /** Every input of the node resolved to an artifact ref. */
  inputs: Record<string, ArtifactRef>;
  signal?: AbortSignal;
  progress?: (event: ProgressEvent) => void;
  log?: StageLogger;
  /** Run even on a cache hit (the new outputs replace the cache entry). */
  force?: boolean;
  /** The process's loaded models, shared by the nodes it runs (see model-cache.ts); default: load per node. */
  models?: ModelCache;
}

export interface NodeExecution {
  outputs: Record<string, ArtifactRef>;
  cacheHit: boolean;
  cacheKey: string;
}

const silentLog: StageLogger = { info() {}, warn() {} };

/**
 * sha256 of canonical JSON of what determines a node's outputs. Equal keys ⇒ reusable outputs. A stage
 * plugin's identity joins the key (only then, so the keys of registered stages stay as they were).
 */
export function computeCacheKey(
  stage: Pick<Stage<unknown>, 'name' | 'version'>,
  params: unknown,
  inputs: Record<string, ArtifactRef>,
  modelDigest: string | null,
  pluginIdentity: string | null = null,
): string {
  const inputDigests = Object.fromEntries(Object.entries(inputs).map(([name, ref]) => [name, ref.digest]));
  let canonical: string;
  try {
    const key = { stage: stage.name, version: stage.version, params, inputs: inputDigests, model: modelDigest };
    canonical = canonicalJson(pluginIdentity === null ? key : { ...key, plugin: pluginIdentity });
  } catch (error) {
    throw new BadInputError(`stage ${stage.name}: params are not JSON-serialisable (${(error as Error).message})`);
  }
  return sha256Hex(canonical);
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('the run was cancelled', 'AbortError');
}

/** What executeNode works out before running anything: the stage, its parsed params, the cache key. */
export interface PreparedNode {
  stage: Stage<unknown>;
  params: unknown;
  cacheKey: string;
  log: StageLogger;
  signal: AbortSignal;
}

/** Resolve the node's stage, parse its params, check its model and inputs, and compute its cache key. */
export async function prepareNode(request: ExecuteNodeRequest): Promise<PreparedNode> {
  const { store, node, inputs } = request;
  const stage = request.stage ?? (request.stages && (await resolveNodeStage(request.stages, node)));
  if (!stage) throw new BadInputError(`node "${node.id}" uses unknown stage "${node.stage}"`);
  const params = parseNodeParams(stage, node);
  checkModel(stage, node.model?.path, node.id);
  await checkInputs(store, stage, inputs, node.id);
  const cacheKey = computeCacheKey(stage, params, inputs, node.model?.digest ?? null, node.plugin?.identity ?? null);
  return { stage, params, cacheKey, log: request.log ?? silentLog, signal: request.signal ?? new AbortController().signal };
}

/** The node's cached outputs when they are recorded and every one is present and intact, else null. */
export async function findCachedNode(store: CachingStore, node: DagNode, prepared: PreparedNode): Promise<NodeExecution | null> {
  const { stage, cacheKey, log } = prepared;
  const cached = await readCacheEntry(store, cacheKey, node, log);
  // A hit needs every output present and intact: gc may have removed some, a disk or a hand may have
  // changed their bytes. Anything else is a miss, and the rerun rewrites (repairs) the outputs.
  const problem = cached && (await unusableOutput(store, cached.outputs, stage));
  if (cached && problem === null) return { outputs: cached.outputs, cacheHit: true, cacheKey };
  if (problem) log.warn(`cached outputs of node "${node.id}" are unusable (${problem}); recomputing`, { cacheKey });
  return null;
}

/**
 * Record `outputs` (already committed artifacts) under the node's cache key. Written last, so a crash
 * before it only costs a rerun (which rewrites identical artifacts) — never a stale or partial hit.
 */
export async function recordCachedNode(store: CachingStore, node: DagNode, prepared: PreparedNode, outputs: Record<string, ArtifactRef>): Promise<NodeExecution> {
  const { stage, cacheKey } = prepared;
  const plugin = node.plugin ?? null;
  const entry: CacheEntry = {
    stage: stage.name,
    version: stage.version,
    ...(plugin ? { plugin: { module: plugin.module, identity: plugin.identity } } : {}),
    node: node.id,
    outputs,
    createdAt: new Date().toISOString(),
  };
  await store.records.put(CACHE_NAMESPACE, cacheKey, entry, { refs: Object.values(outputs).map((ref) => ref.digest) });
  return { outputs, cacheHit: false, cacheKey };
}

export async function executeNode(request: ExecuteNodeRequest): Promise<NodeExecution> {
  const { store, node, inputs } = request;
  const prepared = await prepareNode(request);
  const { stage, params, log, signal } = prepared;
  if (!request.force) {
    const cached = await findCachedNode(store, node, prepared);
    if (cached) return cached;
  }
  if (signal.aborted) throw abortReason(signal);
  const plugin = node.plugin ?? null;
  const outputs = await runChecked(stage, inputs, params, {
    store: plugin ? storeForPlugin(store, plugin) : store,
    progress: request.progress,
    signal,
    log,
    modelDigest: node.model?.digest ?? null,
    modelPath: node.model?.path ?? null,
    node: node.id,
    models: request.models,
  });
  return recordCachedNode(store, node, prepared, outputs);
}

/** Errors that mean "this stored artifact cannot be served" (as opposed to an IO failure worth retrying). */
export function isUnusableArtifactError(error: unknown): error is Error {
  return error instanceof DigestMismatchError || error instanceof NotFoundError || error instanceof UnsafeStoreEntryError || error instanceof InvalidNameError;
}

/** The cache entry under `cacheKey`; a record that cannot be parsed is reported and counts as a miss. */
async function readCacheEntry(store: CachingStore, cacheKey: string, node: DagNode, log: StageLogger): Promise<CacheEntry | null> {
  try {
    const entry = await store.records.get<CacheEntry>(CACHE_NAMESPACE, cacheKey);
    return entry && typeof entry.outputs === 'object' && entry.outputs !== null ? entry : null;
  } catch (error) {
    if (!(error instanceof CorruptRecordError)) throw error;
    log.warn(`cache record of node "${node.id}" is unreadable, treated as a miss: ${error.message}`, { file: error.path });
    return null;
  }
}

/**
 * Why the cached outputs cannot be served (missing, corrupt, a link, or not the artifact the entry says:
 * its manifest names another format or schema, or one the stage does not declare), or null when every
 * declared output is present, hashes to its digest and is what the entry and the stage say. A hit served
 * on the entry's word alone failed every later run in the stage that read it, without repair.
 * Re-hashing costs one read of the outputs per hit: on the 2-core
 * development machine a file's sha256 streams at 0.4–0.7 GB/s and a 31.6 MB store re-hashes in
 * 80–170 ms (measured, verify.ts), so an all-hits quick-preset run pays well under a second. Real IO
 * errors (EACCES, EIO) are not misses and propagate.
 */
async function unusableOutput(store: CachingStore, outputs: Record<string, ArtifactRef>, stage: Stage<unknown>): Promise<string | null> {
  for (const name of stage.outputs) {
    const ref = outputs[name];
    if (!ref || typeof ref.digest !== 'string') return `output "${name}" is not in the cache entry`;
    try {
      if (!(await store.has(ref.digest))) return `output "${name}" (${ref.digest}) is no longer in the store`;
      await store.verify(ref.digest);
      const manifest = await store.manifest(ref.digest);
      if (manifest.format !== ref.format || manifest.schema !== ref.schema) {
        return `output "${name}" (${ref.digest}) is a ${manifest.schema} (${manifest.format}) artifact, not the ${ref.schema} (${ref.format}) the cache entry names`;
      }
      const declared = stage.outputSchemas?.[name];
      const mismatch = declared === undefined ? null : schemaReadableAs(ref.schema, declared);
      if (mismatch !== null) return `output "${name}" is a ${ref.schema} artifact, the stage declares ${declared}: ${mismatch}`;
    } catch (error) {
      if (isUnusableArtifactError(error) || error instanceof CorruptRecordError) {
        return `output "${name}": ${error.message}`;
      }
      throw error;
    }
  }
  return null;
}
