/**
 * Loaded models kept between the nodes (and shards) one process runs, so a worker that runs many shards of
 * one model loads it once: uploading SmolLM2-135M's weights and building its tokenizer is about a second
 * per node, more for larger models, and a sharded quick-preset run has ~20 model nodes and shards.
 *
 * Keyed by what the model IS, never by where it is: the content digest of its file(s) as they are now
 * (@dro/llm's digest: sha256, re-hashed whenever the file's inode, size, mtime or ctime changed) and the
 * tfjs backend. A model file replaced or edited in place since it was cached is a new key, so a stale model
 * is never served for it. The weights are read from the file after its digest is taken, so a model whose
 * files changed while it was being built (its digest after the build differs) serves the run that loaded
 * it, as an uncached load would, and is not kept.
 *
 * Bounded (`capacity`, default 1) and least-recently-used: a miss first disposes idle models beyond
 * capacity − 1, then uploads the new one. With capacity 1 the process holds at most the one model a node
 * uses while it runs, as without the cache, so ChatModel.memoryBudget (the backend's memory less ONE
 * resident model) stays true. Models in use are never disposed; one evicted or cleared while in use is
 * disposed when its last lease is released. clear() (a worker's shutdown, the end of a local run)
 * disposes everything.
 *
 * tfjs is imported on the first acquire only: a process that never runs a model stage never loads it.
 */
import type { ChatModel, LoadModelOptions } from '@dro/llm';

/** A cached model in use by one stage run; release it (once) when the run ends. Never dispose it. */
export interface ModelLease {
  model: ChatModel;
  release(): void;
}

interface Entry {
  key: string;
  /** Resolves once the model is built (a failed build removes the entry). */
  model: Promise<ChatModel>;
  /** The built model, once it is (an idle entry always has one). */
  built: ChatModel | null;
  /** Leases not yet released. */
  users: number;
  /** Removed from the cache (evicted or cleared): disposed when its last lease is released. */
  dropped: boolean;
}

export class ModelCache {
  /** Entries in least- to most-recently-used order. */
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly capacity = 1,
    private readonly options: LoadModelOptions = {},
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`ModelCache: capacity must be a whole number ≥ 1, got ${capacity}`);
  }

  /** Models held (in use or idle). */
  get size(): number {
    return this.entries.size;
  }

  /** The model at `modelPath` (loaded, or the cached copy of the same content and backend), leased. */
  async acquire(modelPath: string): Promise<ModelLease> {
    const { buildModel, openModelFile } = await import('@dro/llm');
    const { modelDigest } = await import('@dro/llm/weights');
    const opened = await openModelFile(modelPath, this.options);
    const digest = opened.weights.digest;
    const key = `${opened.backend}:${digest}`;
    let entry = this.entries.get(key);
    // A model disposed behind the cache's back (a stage must not, a plugin might) is not served again.
    if (entry?.built?.disposed) {
      this.entries.delete(key);
      entry = undefined;
    }
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    } else {
      this.evictIdle(this.capacity - 1);
      const created: Entry = { key, model: buildModel(opened), built: null, users: 0, dropped: false };
      entry = created;
      this.entries.set(key, created);
      created.model.then(
        (model) => {
          created.built = model;
          // Changed (or gone) while its weights were read: what was uploaded may not be what the key says.
          let unchanged = false;
          try {
            unchanged = modelDigest(opened.weights.files, opened.path) === digest;
          } catch {
            // Unreadable now: not kept.
          }
          if (!unchanged && this.entries.get(key) === created) this.drop(created);
        },
        () => {
          if (this.entries.get(key) === created) this.entries.delete(key);
        },
      );
    }
    entry.users++;
    let model: ChatModel;
    try {
      model = await entry.model;
    } catch (error) {
      entry.users--;
      throw error;
    }
    const held = entry;
    let released = false;
    return {
      model,
      release: () => {
        if (released) return;
        released = true;
        held.users--;
        if (held.users > 0) return;
        if (held.dropped) held.built?.dispose();
        else this.evictIdle(this.capacity);
      },
    };
  }

  /** Dispose every idle model now and every model in use when its last lease is released. */
  clear(): void {
    for (const entry of [...this.entries.values()]) this.drop(entry);
  }

  /** Dispose idle models, least recently used first, until at most `keep` models are held. */
  private evictIdle(keep: number): void {
    for (const entry of [...this.entries.values()]) {
      if (this.entries.size <= keep) return;
      if (entry.users === 0) this.drop(entry);
    }
  }

  private drop(entry: Entry): void {
    this.entries.delete(entry.key);
    entry.dropped = true;
    if (entry.users === 0) entry.built?.dispose();
  }
}
