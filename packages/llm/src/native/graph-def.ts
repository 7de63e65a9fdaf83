/**
 * A TensorFlow GraphDef builder and SavedModel writer, enough to hand a static computation to libtensorflow
 * as one graph (see forward-graph.ts for why). Only the protobuf fields this project uses are written; field
 * numbers follow tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape}.proto and
 * tensorflow/core/protobuf/{meta_graph,saved_model}.proto.
 */

/** TensorFlow DataType enum values (types.proto). */
export const DT_FLOAT = 1;
export const DT_INT32 = 3;

/** GraphDef producer version: the TensorFlow graph format these nodes are written for (TF 2.x). */
const GRAPH_PRODUCER = 1700;

/** Minimal protobuf encoder: varints, length-delimited fields, nested messages. */
class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private readonly scratch: number[] = [];

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    this.parts.push(Uint8Array.from(this.scratch));
    this.scratch.length = 0;
  }

  private varint(value: number): void {
    // int64 two's complement for negatives (dims of -1): 10 bytes.
    let v = BigInt.asUintN(64, BigInt(value));
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      this.scratch.push(byte);
    } while (v !== 0n);
  }

  private tag(field: number, wireType: 0 | 2 | 5): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number | boolean): this {
    this.tag(field, 0);
    this.varint(typeof value === 'boolean' ? Number(value) : value);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.byteLength);
    this.flushScratch();
    this.parts.push(data);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  /** A packed repeated int field. */
  packed(field: number, values: readonly number[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(v);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    this.flushScratch();
    const total = this.parts.reduce((n, p) => n + p.byteLength, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const p of this.parts) {
      out.set(p, offset);
      offset += p.byteLength;
    }
    return out;
  }
}

/** A node attribute value (attr_value.proto's oneof). */
export type Attr =
  | { type: number }
  | { b: boolean }
  | { i: number }
  | { shape: readonly number[] | null } // null: unknown rank; -1: unknown dimension
  | { tensor: { dtype: number; shape: readonly number[]; content: Uint8Array } };

function writeShape(w: ProtoWriter, dims: readonly number[] | null): void {
  if (dims === null) {
    w.int(3, true); // unknown_rank
    return;
  }
  for (const size of dims) w.message(2, (dim) => dim.int(1, size));
}

function writeAttr(w: ProtoWriter, attr: Attr): void {
  if ('type' in attr) w.int(6, attr.type);
  else if ('b' in attr) w.int(5, attr.b);
  else if ('i' in attr) w.int(3, attr.i);
  else if ('shape' in attr) w.message(7, (s) => writeShape(s, attr.shape));
  else {
    const t = attr.tensor;
    w.message(8, (tensor) => {
      tensor.int(1, t.dtype);
      tensor.message(2, (s) => writeShape(s, t.shape));
      tensor.bytes(4, t.content); // tensor_content: little-endian raw values
    });
  }
}

/** A graph under construction. Node outputs are referred to as "name" (output 0) or "name:k". */
export class GraphBuilder {
  private readonly nodes: Uint8Array[] = [];
  private readonly names = new Set<string>();
  private readonly counters = new Map<string, number>();

  /** Add a node; returns its name (= its first output). `name` defaults to op_N. */
  op(op: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, name?: string): string {
    let nodeName = name;
    if (nodeName === undefined) {
      const n = this.counters.get(op) ?? 0;
      this.counters.set(op, n + 1);
      nodeName = `${op}_${n}`;
    }
    if (this.names.has(nodeName)) throw new Error(`GraphBuilder: duplicate node name ${nodeName}`);
    this.names.add(nodeName);
    const w = new ProtoWriter();
    w.string(1, nodeName).string(2, op);
    for (const input of inputs) w.string(3, input);
    for (const key of Object.keys(attrs).sort()) {
      w.message(5, (entry) => {
        entry.string(1, key);
        entry.message(2, (value) => writeAttr(value, attrs[key]));
      });
    }
    this.nodes.push(w.finish());
    return nodeName;
  }

  placeholder(name: string, dtype: number, shape: readonly number[] | null): string {
    return this.op('Placeholder', [], { dtype: { type: dtype }, shape: { shape } }, name);
  }

  /** An int32 constant: a vector, a scalar, or `shape` (row-major values). */
  constInt32(values: readonly number[], scalar = false, shape?: readonly number[]): string {
    const content = new Uint8Array(Int32Array.from(values).buffer);
    return this.op('Const', [], { dtype: { type: DT_INT32 }, value: { tensor: { dtype: DT_INT32, shape: shape ?? (scalar ? [] : [values.length]), content } } });
  }

  constFloat(values: Float32Array, shape: readonly number[]): string {
    const content = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    return this.op('Const', [], { dtype: { type: DT_FLOAT }, value: { tensor: { dtype: DT_FLOAT, shape, content } } });
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Serialized GraphDef. */
  graphDef(): Uint8Array {
    const w = new ProtoWriter();
    for (const node of this.nodes) w.bytes(1, node);
    w.message(4, (versions) => versions.int(1, GRAPH_PRODUCER));
    return w.finish();
  }
}

/** Tag of the one meta graph written by savedModelBytes. */
export const SAVED_MODEL_TAG = 'serve';

/**
 * A SavedModel (saved_model.pb) holding one meta graph tagged SAVED_MODEL_TAG, no variables and no
 * signatures: callers feed and fetch nodes by name.
 */
export function savedModelBytes(graph: GraphBuilder): Uint8Array {
  const graphDef = graph.graphDef();
  const w = new ProtoWriter();
  w.int(1, 1); // saved_model_schema_version
  w.message(2, (meta) => {
    meta.message(1, (info) => info.string(4, SAVED_MODEL_TAG)); // meta_info_def.tags
    meta.bytes(2, graphDef);
  });
  return w.finish();
}
