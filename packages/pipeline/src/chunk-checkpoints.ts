/**
 * Resumability by chunks: a long stage splits its rows into fixed chunks, stores each finished chunk as
 * an ordinary artifact and remembers it in the store's record index under a key derived from everything
 * that determines the chunk (stage, version, params, input digests, model digest, chunk number). A run
 * that was killed or cancelled restarts from the first missing chunk; the final artifact is the
 * concatenation, identical to an uninterrupted run's.
 *
 * Stores without a record index (the ArtifactStore interface does not require one) simply recompute.
 */
import { type ArtifactRef, type ArtifactStore, type ManifestInput, CorruptRecordError, canonicalJson, concatTables, sha256Hex } from '@dro/artifacts';
import { isUnusableArtifactError } from './execute-node.ts';
import type { StageContext } from './stage.ts';

type Table = Awaited<ReturnType<ArtifactStore['getTable']>>;

interface RecordIndexLike {
  get<T>(namespace: string, key: string): Promise<T | null>;
  put<T>(namespace: string, key: string, value: T, options?: { refs?: string[]; pin?: boolean }): Promise<void>;
}

const NAMESPACE = 'stage-chunks';

export class ChunkCheckpoints {
  private readonly records: RecordIndexLike | null;

  constructor(
    private readonly store: ArtifactStore,
    private readonly identity: unknown,
  ) {
    const records = (store as { records?: RecordIndexLike }).records;
    this.records = records && typeof records.get === 'function' ? records : null;
  }

  private key(chunk: number): string {
    return sha256Hex(canonicalJson({ identity: this.identity, chunk }));
  }

  /**
   * The stored artifact of `chunk` if an earlier run finished it and it is still in the store, intact (as
   * for a cache hit: an unreadable record or a corrupt artifact means the chunk is recomputed).
   */
  async find(chunk: number): Promise<ArtifactRef | null> {
    if (!this.records) return null;
    try {
      const ref = await this.records.get<ArtifactRef>(NAMESPACE, this.key(chunk));
      if (!ref || !(await this.store.has(ref.digest))) return null;
      await this.store.verify(ref.digest);
      return ref;
    } catch (error) {
      if (error instanceof CorruptRecordError || isUnusableArtifactError(error)) return null;
      throw error;
    }
  }

  async remember(chunk: number, ref: ArtifactRef): Promise<void> {
    await this.records?.put(NAMESPACE, this.key(chunk), ref, { refs: [ref.digest] });
  }
}

export interface ChunkedRun {
  /** Rows per chunk: the resume granularity. */
  chunkSize: number;
  /** Schema of every chunk's table (and of the concatenation). */
  schema: string;
  /** Progress message after each chunk ("hidden states"). */
  message: string;
  /** Changes to ctx.manifest() for the chunks (e.g. params the stage resolved); each chunk's params add `chunk`. */
  manifest?: Partial<ManifestInput>;
}

/**
 * `rows` in checkpointed chunks of `chunkSize`: `compute` makes a chunk's table only for chunks no earlier
 * run of the same node finished (keyed by what ctx.manifest() records but the backend), each is stored and
 * remembered, and the result is every chunk's table concatenated — identical to an uninterrupted run's.
 * Progress is reported after each chunk; `compute` may report finer progress itself.
 */
export async function runInChunks<R>(ctx: StageContext, rows: readonly R[], run: ChunkedRun, compute: (chunkRows: R[], offset: number) => Promise<Table>): Promise<Table> {
  const { producer, params, inputs, modelDigest } = ctx.manifest(run.manifest);
  const checkpoints = new ChunkCheckpoints(ctx.store, { producer, params, inputs, modelDigest });
  const tables: Table[] = [];
  for (let chunk = 0; chunk * run.chunkSize < rows.length; chunk++) {
    ctx.signal.throwIfAborted();
    const offset = chunk * run.chunkSize;
    const chunkRows = rows.slice(offset, offset + run.chunkSize);
    let ref = await checkpoints.find(chunk);
    if (ref !== null) ctx.log.info('chunk resumed from checkpoint', { chunk });
    else {
      const table = await compute(chunkRows, offset);
      const manifest = ctx.manifest(run.manifest);
      ref = await ctx.store.putTable(run.schema, table, { ...manifest, params: { ...(manifest.params as object), chunk } });
      await checkpoints.remember(chunk, ref);
    }
    tables.push(await ctx.store.getTable(ref));
    ctx.progress({ done: offset + chunkRows.length, total: rows.length, message: run.message });
  }
  return concatTables(tables);
}
