/**
 * The store a stage plugin sees (ctx.store): the node's store, with two differences that keep the
 * plugin's provenance and resumable state its own.
 *  - Every manifest it writes names the plugin: producer.plugin = { module, identity }. (A write whose
 *    bytes are already stored keeps the first manifest: manifests describe an artifact's first producer.)
 *  - Every record key it uses (ChunkCheckpoints) is scoped by its identity, so a plugin that keeps the
 *    replaced stage's name and version never resumes from that stage's chunks, nor an edited plugin from
 *    its earlier version's.
 */
import { canonicalJson, sha256Hex, type ArtifactStore, type ManifestInput } from '@dro/artifacts';
import type { StagePluginRef } from './stage.ts';

/** Argument index of the ManifestInput in each writing method of an ArtifactStore. */
const MANIFEST_ARG: Record<string, number> = { putTable: 2, putJson: 2, putTensors: 2, putBytes: 3 };
/** Methods of a record index whose arguments are (namespace, key, …). */
const KEYED_RECORD_METHODS = new Set(['get', 'getRecord', 'put', 'overwriteInPlace', 'delete']);

export function storeForPlugin<S extends ArtifactStore>(store: S, plugin: StagePluginRef): S {
  const stamp = { module: plugin.module, identity: plugin.identity };
  const records = (store as { records?: object }).records;
  const scopedRecords = records && forwarding(records, (name, fn) =>
    KEYED_RECORD_METHODS.has(name)
      ? (namespace: unknown, key: unknown, ...rest: unknown[]) => fn(namespace, sha256Hex(canonicalJson({ plugin: plugin.identity, key })), ...rest)
      : fn);
  return forwarding(store, (name, fn) => {
    const at = MANIFEST_ARG[name];
    if (at === undefined) return fn;
    return (...args: unknown[]) => {
      const input = args[at] as ManifestInput | undefined;
      if (input && typeof input === 'object') args[at] = { ...input, producer: { ...input.producer, plugin: stamp } };
      return fn(...args);
    };
  }, scopedRecords ? { records: scopedRecords } : {});
}

type Method = (...args: unknown[]) => unknown;

/** A view of `target` whose methods are bound to it (private fields keep working), optionally wrapped. */
function forwarding<T extends object>(
  target: T,
  wrap: (name: string, fn: Method) => Method,
  overrides: Record<string, unknown> = {},
): T {
  return new Proxy(target, {
    get(t, prop) {
      if (typeof prop === 'string' && prop in overrides) return overrides[prop];
      const value = Reflect.get(t, prop, t) as unknown;
      if (typeof value !== 'function') return value;
      const bound = (value as Method).bind(t);
      return typeof prop === 'string' ? wrap(prop, bound) : bound;
    },
  });
}
