/**
 * The schema registry: one declared schema per artifact type, checked when the store writes an artifact
 * and again when it reads one, so a stage never consumes a table with a missing column or a vector of
 * the wrong width. Errors name the artifact, the column (or field) and what was expected.
 *
 * Schema names carry their version ("rendered-inputs/v1"); a changed layout is a new name.
 */
import * as arrow from 'apache-arrow';
import type { ArtifactFormat, ArtifactRef, ArtifactStore, TensorData, TensorDType } from './types.ts';
import { BadInputError, SchemaError } from './errors.ts';

/** Column types a table schema can declare. "vector" is FixedSizeList<Float32> (embeddings, hidden states). */
export type ColumnType = 'utf8' | 'bool' | 'int32' | 'int64' | 'float32' | 'float64' | 'vector' | 'list<int32>' | 'list<utf8>';

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  /** Whether nulls are allowed (default false). */
  nullable?: boolean;
  /** For "vector": the fixed width, or "any" when it depends on the model (still one width per table). */
  listSize?: number | 'any';
}

export interface TableSchema {
  kind: 'table';
  name: string;
  columns: ColumnSpec[];
}

export interface JsonSchema<T = unknown> {
  kind: 'json';
  name: string;
  /** Return the problems found (empty when valid), each naming the field: "rows[3].label: expected 0 or 1". */
  validate(value: unknown): string[];
  /** Phantom for typed reads; never set. */
  readonly _type?: T;
}

export interface TensorSchema {
  kind: 'tensors';
  name: string;
  /** Tensors that must be present, with their dtype and/or rank when fixed. Others are allowed. */
  tensors?: Record<string, { dtype?: TensorDType; rank?: number }>;
  validate?(tensors: Record<string, TensorData>, metadata: Record<string, string>): string[];
}

export type ArtifactSchema = TableSchema | JsonSchema | TensorSchema;

const FORMAT_OF_KIND: Record<ArtifactSchema['kind'], ArtifactFormat> = { table: 'parquet', json: 'json', tensors: 'safetensors' };
const SCHEMA_NAME = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*\/v\d+$/;

const registry = new Map<string, ArtifactSchema>();

function register<S extends ArtifactSchema>(schema: S): S {
  if (!SCHEMA_NAME.test(schema.name)) {
    throw new SchemaError(`schema name "${schema.name}" must be lowercase words ending in a version, like "rendered-inputs/v1"`);
  }
  const existing = registry.get(schema.name);
  // Re-registering the same declaration is harmless (a module loaded twice); a different one is a bug.
  if (existing && JSON.stringify(existing) !== JSON.stringify(schema)) {
    throw new SchemaError(`schema "${schema.name}" is already defined differently; bump its version instead`);
  }
  registry.set(schema.name, schema);
  return schema;
}

export function defineTableSchema(spec: Omit<TableSchema, 'kind'>): TableSchema {
  const names = new Set<string>();
  for (const column of spec.columns) {
    if (names.has(column.name)) throw new SchemaError(`schema "${spec.name}": column "${column.name}" declared twice`);
    names.add(column.name);
    if (column.type === 'vector' && column.listSize === undefined) {
      throw new SchemaError(`schema "${spec.name}": vector column "${column.name}" needs listSize (a number or "any")`);
    }
  }
  return register({ kind: 'table', ...spec });
}

export function defineJsonSchema<T = unknown>(spec: Omit<JsonSchema<T>, 'kind' | '_type'>): JsonSchema<T> {
  return register({ kind: 'json', ...spec }) as JsonSchema<T>;
}

export function defineTensorSchema(spec: Omit<TensorSchema, 'kind'>): TensorSchema {
  return register({ kind: 'tensors', ...spec });
}

/** The declared schema `name`, which must be of `kind`. */
export function getSchema<K extends ArtifactSchema['kind']>(name: string, kind: K): Extract<ArtifactSchema, { kind: K }> {
  const schema = registry.get(name);
  if (!schema) {
    const known = [...registry.keys()].sort().join(', ') || 'none';
    throw new SchemaError(`unknown schema "${name}" (declared: ${known}); import the module that defines it`);
  }
  if (schema.kind !== kind) {
    throw new SchemaError(`schema "${name}" is a ${schema.kind} schema (${FORMAT_OF_KIND[schema.kind]}), not a ${kind} schema`);
  }
  return schema as Extract<ArtifactSchema, { kind: K }>;
}

export function listSchemas(): ArtifactSchema[] {
  return [...registry.values()];
}

/**
 * Whether an artifact of schema `actual` can be read by a consumer of schema `declared`: the same schema,
 * or a table schema with every declared column at the same type, no looser nullability and a compatible
 * vector width (hidden-states-all-layers/v1 reads as hidden-states/v1). Returns null when it can, else why not.
 */
export function schemaReadableAs(actual: string, declared: string): string | null {
  if (actual === declared) return null;
  const a = registry.get(actual);
  const d = registry.get(declared);
  if (!a || !d) return `schema "${!a ? actual : declared}" is not declared`;
  if (a.kind !== 'table' || d.kind !== 'table') return `a ${a.kind} schema "${actual}" is not "${declared}"`;
  for (const want of d.columns) {
    const got = a.columns.find((c) => c.name === want.name);
    if (!got) return `"${actual}" has no column "${want.name}" of "${declared}"`;
    const width = want.type !== 'vector' || want.listSize === 'any' || got.listSize === want.listSize;
    if (got.type !== want.type || !width || (got.nullable && !want.nullable)) {
      return `"${actual}" column "${want.name}" is ${describeColumnType(got)}${got.nullable ? ' (nullable)' : ''}, "${declared}" reads ${describeColumnType(want)}`;
    }
  }
  return null;
}

function describeColumnType(spec: ColumnSpec): string {
  return spec.type === 'vector' ? `FixedSizeList<Float32>[${spec.listSize}]` : spec.type;
}

function typeMatches(spec: ColumnSpec, type: arrow.DataType): boolean {
  const isInt = (t: arrow.DataType, bits: number) => arrow.DataType.isInt(t) && t.bitWidth === bits && t.isSigned;
  const isFloat = (t: arrow.DataType, precision: arrow.Precision) => arrow.DataType.isFloat(t) && t.precision === precision;
  const isString = (t: arrow.DataType) => arrow.DataType.isUtf8(t) || arrow.DataType.isLargeUtf8(t);
  switch (spec.type) {
    case 'utf8':
      return isString(type);
    case 'bool':
      return arrow.DataType.isBool(type);
    case 'int32':
      return isInt(type, 32);
    case 'int64':
      return isInt(type, 64);
    case 'float32':
      return isFloat(type, arrow.Precision.SINGLE);
    case 'float64':
      return isFloat(type, arrow.Precision.DOUBLE);
    case 'vector':
      return (
        arrow.DataType.isFixedSizeList(type) &&
        isFloat(type.children[0].type, arrow.Precision.SINGLE) &&
        (spec.listSize === 'any' || type.listSize === spec.listSize)
      );
    case 'list<int32>':
      return arrow.DataType.isList(type) && isInt(type.children[0].type, 32);
    case 'list<utf8>':
      return arrow.DataType.isList(type) && isString(type.children[0].type);
  }
}

/**
 * Check `table` against `schema` and return it with columns in declared order (so equal data always
 * serialises to equal bytes). `artifact` names the artifact in errors ("writing x/v1 from stage s").
 */
export function validateTable(schema: TableSchema, table: arrow.Table, artifact: string): arrow.Table {
  const fail = (what: string): never => {
    throw new SchemaError(`${artifact} (schema ${schema.name}): ${what}`);
  };
  const declared = new Set(schema.columns.map((c) => c.name));
  for (const field of table.schema.fields) {
    if (!declared.has(field.name)) fail(`unexpected column "${field.name}" (declared: ${[...declared].join(', ')})`);
  }
  for (const spec of schema.columns) {
    const column = table.getChild(spec.name);
    const field = table.schema.fields.find((f) => f.name === spec.name);
    if (!column || !field) {
      fail(`missing column "${spec.name}", expected ${describeColumnType(spec)}`);
      continue;
    }
    if (!typeMatches(spec, field.type)) fail(`column "${spec.name}": expected ${describeColumnType(spec)}, got ${field.type}`);
    if (!spec.nullable && column.nullCount > 0) fail(`column "${spec.name}": expected no nulls, found ${column.nullCount}`);
    if (spec.type === 'vector') {
      for (const chunk of column.data) {
        if (chunk.children[0].nullCount > 0) fail(`column "${spec.name}": vector elements must not be null`);
      }
    }
  }
  return table.select(schema.columns.map((c) => c.name));
}

export function validateJson(schema: JsonSchema, value: unknown, artifact: string): void {
  const problems = schema.validate(value);
  if (problems.length > 0) throw new SchemaError(`${artifact} (schema ${schema.name}): ${problems.slice(0, 10).join('; ')}`);
}

export function validateTensors(
  schema: TensorSchema,
  tensors: Record<string, TensorData>,
  metadata: Record<string, string>,
  artifact: string,
): void {
  const problems: string[] = [];
  for (const [name, want] of Object.entries(schema.tensors ?? {})) {
    const tensor = tensors[name];
    if (!tensor) problems.push(`missing tensor "${name}"`);
    else if (want.dtype && tensor.dtype !== want.dtype) problems.push(`tensor "${name}": expected dtype ${want.dtype}, got ${tensor.dtype}`);
    else if (want.rank !== undefined && tensor.shape.length !== want.rank) {
      problems.push(`tensor "${name}": expected rank ${want.rank}, got shape [${tensor.shape.join(', ')}]`);
    }
  }
  problems.push(...(schema.validate?.(tensors, metadata) ?? []));
  if (problems.length > 0) throw new SchemaError(`${artifact} (schema ${schema.name}): ${problems.slice(0, 10).join('; ')}`);
}

/** Build a FixedSizeList<Float32> column from row-major values: rows × dim → one vector per row. */
export function vectorColumn(values: Float32Array, dim: number): arrow.Vector<arrow.FixedSizeList<arrow.Float32>> {
  if (!Number.isInteger(dim) || dim <= 0 || values.length % dim !== 0) {
    throw new SchemaError(`vectorColumn: ${values.length} values do not split into rows of width ${dim}`);
  }
  const type = new arrow.FixedSizeList(dim, new arrow.Field('item', new arrow.Float32(), false));
  const child = arrow.makeData({ type: new arrow.Float32(), length: values.length, data: values });
  return arrow.makeVector(arrow.makeData({ type, length: values.length / dim, child }));
}

/** The row-major values of a vector column: [rows × dim] as one Float32Array (copied across chunks). */
export function vectorValues(table: arrow.Table, column: string): { values: Float32Array; rows: number; dim: number } {
  const vector = table.getChild(column);
  if (!vector || !arrow.DataType.isFixedSizeList(vector.type)) {
    throw new SchemaError(`vectorValues: column "${column}" is not a FixedSizeList<Float32> column`);
  }
  const dim = vector.type.listSize;
  const values = new Float32Array(vector.length * dim);
  let offset = 0;
  for (const chunk of vector.data) {
    // Slicing arrow Data slices the child's value buffer too, so each chunk's floats start at 0.
    const floats = (chunk.children[0].values as Float32Array).subarray(0, chunk.length * dim);
    values.set(floats, offset);
    offset += chunk.length * dim;
  }
  return { values, rows: vector.length, dim };
}

/** Plain column values accepted by tableForSchema, by declared column type. */
export type PlainColumn =
  | readonly (string | null)[]
  | readonly (number | null)[]
  | readonly (boolean | null)[]
  | readonly (readonly number[])[]
  | Float32Array
  | Float64Array
  | Int32Array;

/**
 * Build an Arrow table whose column types are exactly the declared ones (utf8 stays Utf8, not the
 * dictionary type arrow infers for strings). "vector" columns take row-major Float32Array values plus
 * their width in `vectorWidths`.
 */
export function tableForSchema(
  schema: TableSchema,
  columns: Record<string, PlainColumn>,
  vectorWidths: Record<string, number> = {},
): arrow.Table {
  const vectors: Record<string, arrow.Vector> = {};
  for (const spec of schema.columns) {
    const values = columns[spec.name];
    if (values === undefined) throw new Error(`tableForSchema(${schema.name}): no values for column "${spec.name}"`);
    if (spec.type === 'vector') {
      const width = vectorWidths[spec.name];
      if (!(values instanceof Float32Array) || width === undefined)
        throw new Error(`tableForSchema(${schema.name}): vector column "${spec.name}" needs a Float32Array and a width`);
      vectors[spec.name] = vectorColumn(values, width);
      continue;
    }
    const type = ARROW_TYPE_OF[spec.type]();
    vectors[spec.name] = arrow.vectorFromArray(Array.from(values as ArrayLike<unknown>), type);
  }
  return new arrow.Table(vectors);
}

const ARROW_TYPE_OF: Record<Exclude<ColumnType, 'vector'>, () => arrow.DataType> = {
  utf8: () => new arrow.Utf8(),
  bool: () => new arrow.Bool(),
  int32: () => new arrow.Int32(),
  int64: () => new arrow.Int64(),
  float32: () => new arrow.Float32(),
  float64: () => new arrow.Float64(),
  'list<int32>': () => new arrow.List(new arrow.Field('item', new arrow.Int32(), true)),
  'list<utf8>': () => new arrow.List(new arrow.Field('item', new arrow.Utf8(), true)),
};

/** Column `name` of `table` as plain JS values (strings, numbers, booleans, null). */
export function columnValues<T = unknown>(table: arrow.Table, name: string, artifact: string): T[] {
  const column = table.getChild(name);
  if (!column) throw new SchemaError(`${artifact}: missing column "${name}"`);
  return Array.from({ length: table.numRows }, (_, i) => column.get(i) as T);
}

/** A BadInputError unless an artifact of `ref.schema` reads as `schema` (schemaReadableAs); `input` names it. */
export function expectSchema(ref: ArtifactRef, schema: string, input: string): void {
  if (schemaReadableAs(ref.schema, schema) !== null) throw new BadInputError(`input "${input}": expected a ${schema} artifact, got ${ref.schema}`);
}

/** A stored table read as `schema`: the table, its name in errors ("<input> <digest prefix>"), typed columns. */
export interface StoredTable {
  table: arrow.Table;
  name: string;
  column<T>(name: string): T[];
}

/** Read the table `ref` as an artifact of `schema` (checked first); `input` names it in every error. */
export async function readStoredTable(store: ArtifactStore, ref: ArtifactRef, schema: TableSchema, input: string): Promise<StoredTable> {
  expectSchema(ref, schema.name, input);
  const table = await store.getTable(ref);
  const name = `${input} ${ref.digest.slice(0, 12)}`;
  return { table, name, column: <T>(c: string) => columnValues<T>(table, c, name) };
}

/** The label of a row, checked: `where` names the row in the error. */
export function checkedLabel(value: unknown, where: string): 'harmful' | 'harmless' {
  if (value !== 'harmful' && value !== 'harmless') throw new BadInputError(`${where}: label must be harmful or harmless, got "${String(value)}"`);
  return value;
}
