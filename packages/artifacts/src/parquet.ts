/**
 * Arrow ↔ Parquet through parquet-wasm (arrow-rs compiled to wasm). Tables cross the JS/wasm boundary
 * as Arrow IPC streams. arrow-rs stores the Arrow schema in the Parquet footer, so FixedSizeList<Float32>
 * vectors come back as vectors (pyarrow reads them the same way).
 */
import * as arrow from 'apache-arrow';
import * as parquet from 'parquet-wasm';
import { ArtifactFormatError } from './errors.ts';

/**
 * Rows per record batch of a table read back from Parquet (parquet-wasm's reader default). A table whose
 * batches all (but the last) hold a multiple of it is in canonical form.
 */
const READ_BATCH_ROWS = 1024;

/**
 * Serialise an Arrow table to zstd-compressed Parquet bytes that depend only on its rows, never on how it
 * is split into record batches in memory. arrow-rs decides page and dictionary-fallback boundaries at
 * points counted from each batch's start, so the same rows in other batches can give other bytes
 * (measured: 3000 rows of 576 floats + text, as batches of 7 or 333 rows, differ from one batch). A row-
 * parallel stage's merged shards and its unsharded run must give the same digest, so a table whose
 * batches are not in the canonical form (what the reader returns) is written once, read back in it, and
 * written again.
 */
export function tableToParquet(table: arrow.Table): Uint8Array {
  const canonical = table.batches.slice(0, -1).every((batch) => batch.numRows % READ_BATCH_ROWS === 0);
  if (canonical) return writeParquet(table);
  return writeParquet(parquetToTable(writeParquet(table), 'canonical batches'));
}

function writeParquet(table: arrow.Table): Uint8Array {
  const properties = new parquet.WriterPropertiesBuilder().setCompression(parquet.Compression.ZSTD).build();
  // fromIPCStream copies into wasm memory; writeParquet consumes both the table and the properties.
  const wasmTable = parquet.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
  return parquet.writeParquet(wasmTable, properties);
}

/** Parse Parquet bytes into an Arrow table; `label` names the file in the error if they are not Parquet. */
export function parquetToTable(bytes: Uint8Array, label: string): arrow.Table {
  let ipc: Uint8Array;
  try {
    ipc = parquet.readParquet(bytes).intoIPCStream();
  } catch (error) {
    throw new ArtifactFormatError(`parquet ${label}: cannot read (${String((error as Error)?.message ?? error)})`);
  }
  return arrow.tableFromIPC(ipc);
}

/** Row-wise concatenation, in order, of tables with one schema (a chunked stage's chunk outputs). */
export function concatTables(tables: arrow.Table[]): arrow.Table {
  if (tables.length === 0) throw new RangeError('concatTables: no tables to concatenate');
  return tables[0].concat(...tables.slice(1));
}
