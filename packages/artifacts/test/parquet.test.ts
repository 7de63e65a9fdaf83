import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LocalArtifactStore,
  SchemaError,
  defineTableSchema,
  parquetToTable,
  tableToParquet,
  vectorColumn,
  vectorValues,
} from '../src/index.ts';
import { makeTempDir, runPython, seededRandom } from './helpers.ts';

const temp = makeTempDir('parquet');
afterAll(temp.cleanup);

const hiddenStates = defineTableSchema({
  name: 'test-hidden-states/v1',
  columns: [
    { name: 'input_id', type: 'utf8' },
    { name: 'label', type: 'utf8', nullable: true },
    { name: 'harmful', type: 'bool' },
    { name: 'row', type: 'int32' },
    { name: 'tokens', type: 'int64' },
    { name: 'score', type: 'float64' },
    { name: 'logprob', type: 'float32' },
    { name: 'token_ids', type: 'list<int32>' },
    { name: 'hidden', type: 'vector', listSize: 'any' },
    { name: 'pca', type: 'vector', listSize: 4 },
  ],
});

const ROWS = 37;
const HIDDEN = 24;
const random = seededRandom(11);
const hidden = Float32Array.from({ length: ROWS * HIDDEN }, () => (random() - 0.5) * 10);
const pca = Float32Array.from({ length: ROWS * 4 }, () => random() * 1e-3);
const tokenIds = Array.from({ length: ROWS }, (_, i) => Array.from({ length: i % 5 }, (_, j) => i * 100 + j));

function exampleTable(): arrow.Table {
  return new arrow.Table({
    // Columns out of declared order: the store writes them in declared order.
    pca: vectorColumn(pca, 4),
    input_id: arrow.vectorFromArray(Array.from({ length: ROWS }, (_, i) => `train/q${i}/none`), new arrow.Utf8()),
    label: arrow.vectorFromArray(Array.from({ length: ROWS }, (_, i) => (i % 7 === 0 ? null : i % 2 ? 'harmful' : 'harmless')), new arrow.Utf8()),
    harmful: arrow.vectorFromArray(Array.from({ length: ROWS }, (_, i) => i % 2 === 1), new arrow.Bool()),
    row: arrow.vectorFromArray(Int32Array.from({ length: ROWS }, (_, i) => i - 5)),
    tokens: arrow.vectorFromArray(BigInt64Array.from({ length: ROWS }, (_, i) => BigInt(i) * 10_000_000_000n)),
    score: arrow.vectorFromArray(Float64Array.from({ length: ROWS }, (_, i) => Math.PI * i)),
    logprob: arrow.vectorFromArray(Float32Array.from({ length: ROWS }, (_, i) => -i / 3)),
    token_ids: arrow.vectorFromArray(tokenIds, new arrow.List(new arrow.Field('item', new arrow.Int32(), true))),
    hidden: vectorColumn(hidden, HIDDEN),
  });
}

const manifest = { producer: { stage: 'extract', version: '1' }, params: {}, inputs: {} };

describe('Parquet artifacts', () => {
  it('pyarrow reads what the store wrote: zstd, FixedSizeList<float32> vectors, identical values', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store') });
    const ref = await store.putTable(hiddenStates.name, exampleTable(), manifest);
    expect((await store.manifest(ref.digest)).rows).toBe(ROWS);

    const dumped = JSON.parse(
      runPython(
        `
import json, sys
import pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
t = f.read()
codecs = sorted({f.metadata.row_group(g).column(c).compression for g in range(f.metadata.num_row_groups) for c in range(f.metadata.num_columns)})
print(json.dumps({
  "columns": t.column_names,
  "types": {f.name: str(f.type) for f in t.schema},
  "codecs": codecs,
  "data": {k: [str(v) if isinstance(v, int) and abs(v) > 2**53 else v for v in vals] for k, vals in t.to_pydict().items()},
}))
`,
        [store.pathOf(ref)],
      ),
    ) as { columns: string[]; types: Record<string, string>; codecs: string[]; data: Record<string, unknown[]> };

    expect(dumped.codecs).toEqual(['ZSTD']);
    expect(dumped.columns).toEqual(hiddenStates.columns.map((c) => c.name));
    expect(dumped.types).toMatchObject({
      input_id: 'string',
      harmful: 'bool',
      row: 'int32',
      tokens: 'int64',
      score: 'double',
      logprob: 'float',
      hidden: `fixed_size_list<item: float not null>[${HIDDEN}]`,
      pca: 'fixed_size_list<item: float not null>[4]',
    });
    expect(dumped.types.token_ids).toMatch(/^list<item: int32>/);
    const table = exampleTable();
    expect(dumped.data.input_id).toEqual(table.getChild('input_id')!.toArray());
    expect(dumped.data.label).toEqual([...table.getChild('label')!].map((v) => v ?? null));
    expect(dumped.data.harmful).toEqual([...table.getChild('harmful')!]);
    expect(dumped.data.row).toEqual(Array.from({ length: ROWS }, (_, i) => i - 5));
    expect(dumped.data.tokens).toEqual(Array.from({ length: ROWS }, (_, i) => i * 10_000_000_000));
    expect(dumped.data.score).toEqual(Array.from({ length: ROWS }, (_, i) => Math.PI * i));
    expect(dumped.data.logprob).toEqual(Array.from(Float32Array.from({ length: ROWS }, (_, i) => -i / 3)));
    expect(dumped.data.token_ids).toEqual(tokenIds);
    // Vectors: every float32 bit-identical (Python prints float32 widened to double, exactly).
    expect((dumped.data.hidden as number[][]).flat()).toEqual(Array.from(hidden));
    expect((dumped.data.pca as number[][]).flat()).toEqual(Array.from(pca));
  });

  it('reads back its own tables with vectors intact and validates on read', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store') });
    const ref = await store.putTable(hiddenStates.name, exampleTable(), manifest);
    const back = await store.getTable(ref);
    expect(back.numRows).toBe(ROWS);
    expect(vectorValues(back, 'hidden')).toEqual({ values: hidden, rows: ROWS, dim: HIDDEN });
    expect(vectorValues(back, 'pca').values).toEqual(pca);
    // The same table always serialises to the same bytes, so its digest is stable.
    expect((await store.putTable(hiddenStates.name, exampleTable(), manifest)).digest).toBe(ref.digest);
  });

  it('reads a Parquet file written by pyarrow', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store') });
    const file = path.join(temp.dir, 'from-python.parquet');
    runPython(
      `
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
vecs = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12, dtype=np.float32) / 4), 4)
t = pa.table({"input_id": ["a", "b", "c"], "label": [None, "x", "y"], "harmful": [True, False, True],
  "row": pa.array([1, 2, 3], pa.int32()), "tokens": pa.array([1, 2, 3], pa.int64()), "score": [0.5, 1.5, 2.5],
  "logprob": pa.array([0.25, 0.5, 0.75], pa.float32()), "token_ids": pa.array([[1], [], [2, 3]], pa.list_(pa.int32())),
  "hidden": vecs, "pca": vecs})
pq.write_table(t, sys.argv[1], compression="zstd")
`,
      [file],
    );
    const ref = await store.putBytes('parquet', hiddenStates.name, readFileSync(file), manifest, 3);
    const table = await store.getTable(ref);
    expect(vectorValues(table, 'hidden')).toEqual({ values: Float32Array.from({ length: 12 }, (_, i) => i / 4), rows: 3, dim: 4 });
    expect(table.getChild('token_ids')!.get(2)!.toArray()).toEqual(Int32Array.from([2, 3]));
  });

  it('rejects tables that break the schema, naming artifact, column and expectation', async () => {
    const store = new LocalArtifactStore({ root: path.join(temp.dir, 'store') });
    const full = exampleTable();
    const without = (column: string) => full.select(full.schema.fields.map((f) => f.name).filter((n) => n !== column));
    const replace = (column: string, vector: arrow.Vector) => without(column).assign(new arrow.Table({ [column]: vector }));
    const nullable = arrow.vectorFromArray(Array.from({ length: ROWS }, (_, i) => (i === 3 ? null : 'x')), new arrow.Utf8());
    const cases: [string, arrow.Table, RegExp][] = [
      ['missing column', without('score'), /missing column "score", expected float64/],
      ['extra column', full.assign(new arrow.Table({ extra: arrow.vectorFromArray(new Int32Array(ROWS)) })), /unexpected column "extra"/],
      ['wrong type', replace('row', arrow.vectorFromArray(Float64Array.from({ length: ROWS }))), /column "row": expected int32, got Float64/],
      ['nulls', replace('input_id', nullable), /column "input_id": expected no nulls, found 1/],
      ['vector width', replace('pca', vectorColumn(new Float32Array(ROWS * 3), 3)), /column "pca": expected FixedSizeList<Float32>\[4\], got FixedSizeList\[3\]<Float32>/],
    ];
    for (const [label, table, pattern] of cases) {
      const attempt = store.putTable(hiddenStates.name, table, manifest);
      await expect(attempt, label).rejects.toThrow(SchemaError);
      await expect(store.putTable(hiddenStates.name, table, manifest), label).rejects.toThrow(
        new RegExp(`writing test-hidden-states/v1 from extract \\(schema test-hidden-states/v1\\): ${pattern.source}`),
      );
    }
    // On read: bytes that are valid Parquet but not this schema are refused, naming the artifact.
    const ref = await store.putBytes('parquet', hiddenStates.name, tableToParquet(without('pca')), manifest, ROWS);
    await expect(store.getTable(ref)).rejects.toThrow(new RegExp(`artifact ${ref.digest} \\(schema test-hidden-states/v1\\): missing column "pca"`));
    const junk = await store.putBytes('parquet', hiddenStates.name, new TextEncoder().encode('not parquet'), manifest, 0);
    await expect(store.getTable(junk)).rejects.toThrow(/parquet .*: cannot read/);
  });

  it('refuses schema declarations that are ambiguous', () => {
    expect(() => defineTableSchema({ name: 'Bad Name', columns: [] })).toThrow(/must be lowercase words ending in a version/);
    expect(() => defineTableSchema({ name: 'no-version', columns: [] })).toThrow(/ending in a version/);
    expect(() => defineTableSchema({ name: 'v/v1', columns: [{ name: 'v', type: 'vector' }] })).toThrow(/needs listSize/);
    expect(() => defineTableSchema({ name: 'test-hidden-states/v1', columns: [] })).toThrow(/already defined differently/);
  });
});

describe('tableToParquet bytes depend only on the rows', () => {
  // 3000 rows of 576 floats + a long text: big enough for several data pages and a dictionary fallback,
  // where arrow-rs's page boundaries follow the record batches it is given.
  const rows = 3000;
  const d = 576;
  const values = Float32Array.from({ length: rows * d }, (_, i) => Math.sin(i * 0.37));
  const texts = Array.from({ length: rows }, (_, i) => `text ${i} `.repeat(50 + (i % 40)) + String((i * 7919) % 1000));
  const part = (from: number, to: number) => {
    const type = new arrow.FixedSizeList(d, new arrow.Field('item', new arrow.Float32(), false));
    const child = arrow.makeData({ type: new arrow.Float32(), length: (to - from) * d, data: values.slice(from * d, to * d) });
    const list = arrow.makeData({ type, length: to - from, nullCount: 0, child });
    return new arrow.Table({ h: arrow.makeVector(list), s: arrow.vectorFromArray(texts.slice(from, to), new arrow.Utf8()) });
  };
  const inBatchesOf = (size: number) => {
    const parts = [];
    for (let i = 0; i < rows; i += size) parts.push(part(i, Math.min(rows, i + size)));
    return parts[0]!.concat(...parts.slice(1));
  };

  it('the same rows in batches of 7, 333 or 1024 rows, or in one batch, give the same bytes', () => {
    const one = Buffer.from(tableToParquet(part(0, rows)));
    for (const size of [7, 333, 1024]) expect(Buffer.from(tableToParquet(inBatchesOf(size))).equals(one), `batches of ${size}`).toBe(true);
    expect(parquetToTable(one, 'one').numRows).toBe(rows);
  });
});
