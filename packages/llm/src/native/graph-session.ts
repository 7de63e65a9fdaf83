/**
 * Run a GraphDef on the native 'tensorflow' backend as one TensorFlow session call. tfjs-node can load a
 * SavedModel into a TF_Session and run it with tfjs tensors as feeds (its tf.node.loadSavedModel path);
 * this uses the same two binding calls directly, with a SavedModel written to a temporary folder that is
 * removed as soon as TensorFlow has read it. Feeds are shared with the session, not copied (CPU tensors),
 * and fetched tensors come back as ordinary engine-tracked tfjs tensors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../backend.ts';
import { GraphBuilder, SAVED_MODEL_TAG, savedModelBytes } from './graph-def.ts';

/** The part of tfjs-node's NodeJSKernelBackend used here. */
interface SavedModelBackend {
  loadSavedModelMetaGraph(dir: string, tags: string): number;
  runSavedModel(id: number, inputs: tf.Tensor[], inputInfos: { name: string; tfDtype: string }[], outputNames: string[]): tf.Tensor[];
  deleteSavedModel(id: number): void;
}

export class GraphSessionError extends Error {}

export class GraphSession {
  private sessionId: number | null;

  private constructor(
    private readonly backend: SavedModelBackend,
    sessionId: number,
  ) {
    this.sessionId = sessionId;
  }

  /** Load `graph` into a new session (the active backend must be 'tensorflow'). */
  static load(graph: GraphBuilder): GraphSession {
    if (tf.getBackend() !== 'tensorflow') throw new GraphSessionError(`graph sessions need the 'tensorflow' backend (active: ${tf.getBackend()})`);
    const backend = tf.backend() as unknown as SavedModelBackend;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dro-graph-'));
    try {
      fs.writeFileSync(path.join(dir, 'saved_model.pb'), savedModelBytes(graph));
      return new GraphSession(backend, backend.loadSavedModelMetaGraph(dir, SAVED_MODEL_TAG));
    } catch (err) {
      throw new GraphSessionError(`TensorFlow could not load the graph (${graph.size} nodes): ${(err as Error).message}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Feed tensors to placeholders (by node name) and return the fetched outputs ("node" or "node:k"). */
  run(feeds: readonly { name: string; tensor: tf.Tensor }[], fetches: readonly string[]): tf.Tensor[] {
    if (this.sessionId === null) throw new GraphSessionError('graph session used after dispose()');
    const port = (name: string) => (name.includes(':') ? name : `${name}:0`);
    const infos = feeds.map((f) => ({ name: port(f.name), tfDtype: f.tensor.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT' }));
    return this.backend.runSavedModel(this.sessionId, feeds.map((f) => f.tensor), infos, fetches.map(port));
  }

  dispose(): void {
    if (this.sessionId === null) return;
    this.backend.deleteSavedModel(this.sessionId);
    this.sessionId = null;
  }
}
