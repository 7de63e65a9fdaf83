/**
 * Resumability by chunks: a long stage splits its rows into fixed chunks, stores each finished chunk as
 * an ordinary artifact and remembers it in the store's record index under a key derived from everything
 * that determines the chunk (stage, version, params, input digests, model digest, chunk number). A run
 * that was killed or cancelled restarts from the first missing chunk; the final artifact is the
 * concatenation, identical to an uninterrupted run's.
 *
 * Stores without a record index (the ArtifactStore interface does not require one) simply recompute.
 */
import { type ArtifactRef, type ArtifactStore, CorruptRecordError, canonicalJson, sha256Hex } from '@dro/artifacts';
import { isUnusableArtifactError } from './execute-node.ts';

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
