/**
 * Read query sets from user files: .txt (one query per line, label given by the caller), .jsonl, .csv
 * (header row) or .parquet. Columns/fields: query (required), label ("harmful" | "harmless"; required
 * unless the caller gives one for the whole file), id, category, pair_id (optional).
 *
 * Every problem is a BadInputError naming the file and the line (row) and what was expected. Text files
 * must be valid UTF-8 (an invalid byte is reported with its line, never replaced). Empty queries, queries
 * longer than MAX_QUERY_CHARS, duplicate queries (compared as `queryKey` folds them) and duplicate ids are
 * errors: a duplicate would silently double a query's weight in the boundaries.
 */
import path from 'node:path';
import { BadInputError, QUERY_LABELS, type QueryLabel, columnValues, parquetToTable, readUserFile, readUtf8File } from '@dro/artifacts';

/**
 * Longest query accepted at import, in characters (UTF-16 code units after trimming). The project's
 * longest query is 92 characters and the paper's sets (AdvBench, HarmBench, …) stay under 1,000; 16,384
 * characters is ≈ 4,000 English tokens, half of SmolLM2's 8,192-token context. It is a guard against
 * pasted documents and megabyte lines (which would be hashed, stored and tokenised for every prompt
 * variant); the precise limit is the data-prep stage's `maxQueryTokens`.
 */
export const MAX_QUERY_CHARS = 16_384;

/**
 * The form two queries are compared in, for duplicates within a file and overlap between the training and
 * evaluation sets: invisible characters dropped, Unicode-compatibility normalised (NFKC: full-width
 * letters, ligatures), lower-cased,
 * punctuation and symbols turned into spaces, whitespace collapsed. "How do I pick a lock?" and
 * "how do i  pick a lock" are the same query. A query of only punctuation and symbols (emoji) keeps them.
 */
export function queryKey(query: string): string {
  // Invisible characters (zero-width space and joiner, soft hyphen, BOM: Unicode's default-ignorable code
  // points) render as nothing, so "pick\u200ba lock" is the same query to a reader, and to leakage checks.
  const folded = query.replace(/\p{Default_Ignorable_Code_Point}/gu, '').normalize('NFKC').toLowerCase();
  const words = folded.replace(/[\p{P}\p{S}]+/gu, ' ').replace(/\s+/g, ' ').trim();
  return words !== '' ? words : folded.replace(/\s+/g, ' ').trim();
}

export interface QueryRecord {
  query_id: string;
  query: string;
  label: QueryLabel;
  category: string | null;
  pair_id: string | null;
}

export interface ReadQueriesOptions {
  /** Label of every query in the file (required for .txt; a default for files without a label column). */
  label?: QueryLabel;
  /** Prefix of generated ids ("<idPrefix>-<line>"); default the file's base name. */
  idPrefix?: string;
}

/** One raw record and where it came from ("line 3", "row 2"), before validation. */
interface RawRecord {
  where: string;
  fields: Record<string, unknown>;
}

function readText(file: string): string {
  return readUtf8File(file, 'query file');
}

function txtRecords(file: string): RawRecord[] {
  const lines = readText(file).split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  return lines.map((line, i) => ({ where: `line ${i + 1}`, fields: { query: line } }));
}

function jsonlRecords(file: string): RawRecord[] {
  const records: RawRecord[] = [];
  readText(file)
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw new BadInputError(`${file}:${i + 1}: not valid JSON (${(err as Error).message})`);
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new BadInputError(`${file}:${i + 1}: expected a JSON object like {"query": "...", "label": "harmful"}`);
      records.push({ where: `line ${i + 1}`, fields: value as Record<string, unknown> });
    });
  return records;
}

/** RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines. Returns rows with line numbers. */
export function parseCsv(text: string, file: string): { line: number; cells: string[] }[] {
  const rows: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let rowStart = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else {
        if (ch === '\n') line++;
        cell += ch;
      }
    } else if (ch === '"' && cell === '') quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      cells.push(cell);
      if (cells.length > 1 || cells[0] !== '') rows.push({ line: rowStart, cells });
      cells = [];
      cell = '';
      line++;
      rowStart = line;
    } else cell += ch;
  }
  if (quoted) throw new BadInputError(`${file}:${rowStart}: unterminated quoted field`);
  cells.push(cell);
  if (cells.length > 1 || cells[0] !== '') rows.push({ line: rowStart, cells });
  return rows;
}

function csvRecords(file: string): RawRecord[] {
  const rows = parseCsv(readText(file), file);
  if (rows.length === 0) throw new BadInputError(`${file}: empty CSV (expected a header row with a "query" column)`);
  const header = rows[0].cells.map((h) => h.trim());
  if (!header.includes('query')) throw new BadInputError(`${file}:1: header has no "query" column (found: ${header.join(', ')})`);
  return rows.slice(1).map(({ line, cells }) => {
    if (cells.length !== header.length)
      throw new BadInputError(`${file}:${line}: ${cells.length} fields, but the header has ${header.length}`);
    return { where: `line ${line}`, fields: Object.fromEntries(header.map((h, c) => [h, cells[c] === '' ? undefined : cells[c]])) };
  });
}

function parquetRecords(file: string): RawRecord[] {
  const bytes = readUserFile(file, 'query file');
  let table;
  try {
    table = parquetToTable(bytes, file);
  } catch (err) {
    throw new BadInputError(`${file}: not a readable Parquet file (${(err as Error).message})`);
  }
  const names = table.schema.fields.map((f) => f.name);
  if (!names.includes('query')) throw new BadInputError(`${file}: no "query" column (found: ${names.join(', ')})`);
  const columns = Object.fromEntries(names.map((n) => [n, columnValues(table, n, file)]));
  return Array.from({ length: table.numRows }, (_, r) => ({
    where: `row ${r}`,
    fields: Object.fromEntries(names.map((n) => [n, columns[n][r] ?? undefined])),
  }));
}

/** An unpaired UTF-16 surrogate: what a JSON escape such as "\ud800" decodes to; it is not text. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Text that can be stored as UTF-8. JSON may spell a lone surrogate ("\ud800"), which every UTF-8 encoder
 * (Arrow's included) silently turns into U+FFFD — the invalid-byte case of a text file, by another road.
 */
function checkWellFormed(value: string, file: string, where: string, field: string): string {
  const at = value.search(LONE_SURROGATE);
  if (at >= 0) {
    const unit = value.charCodeAt(at).toString(16);
    throw new BadInputError(`${file} ${where}: "${field}" holds an unpaired surrogate \\u${unit} at character ${at + 1}, which is not text (it could only be stored replaced by U+FFFD)`);
  }
  return value;
}

function optionalText(value: unknown, file: string, where: string, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string') throw new BadInputError(`${file} ${where}: "${field}" must be a string, got ${JSON.stringify(value)}`);
  return checkWellFormed(value, file, where, field).trim();
}

function labelOf(value: unknown, fallback: QueryLabel | undefined, file: string, where: string): QueryLabel {
  if (value === undefined || value === null || value === '') {
    if (fallback) return fallback;
    throw new BadInputError(`${file} ${where}: missing "label" (expected "harmful" or "harmless", or give a label for the whole file)`);
  }
  const text = String(value).trim().toLowerCase();
  if (!(QUERY_LABELS as readonly string[]).includes(text))
    throw new BadInputError(`${file} ${where}: "label" must be "harmful" or "harmless", got ${JSON.stringify(value)}`);
  return text as QueryLabel;
}

/** Read and validate a query file. */
export function readQueryFile(file: string, options: ReadQueriesOptions = {}): QueryRecord[] {
  const ext = path.extname(file).toLowerCase();
  const idPrefix = options.idPrefix ?? path.basename(file, path.extname(file));
  let raw: RawRecord[];
  if (ext === '.txt') {
    if (!options.label) throw new BadInputError(`${file}: a .txt query file needs a label for all its lines (harmful or harmless)`);
    raw = txtRecords(file);
  } else if (ext === '.jsonl' || ext === '.ndjson') raw = jsonlRecords(file);
  else if (ext === '.csv') raw = csvRecords(file);
  else if (ext === '.parquet') raw = parquetRecords(file);
  else throw new BadInputError(`${file}: unsupported query file type "${ext}" (expected .txt, .jsonl, .csv or .parquet)`);
  if (raw.length === 0) throw new BadInputError(`${file}: no queries`);

  const seenQueries = new Map<string, string>();
  const seenIds = new Map<string, string>();
  return raw.map(({ where, fields }, index) => {
    const query = fields.query;
    if (typeof query !== 'string') throw new BadInputError(`${file} ${where}: "query" must be a string, got ${JSON.stringify(query)}`);
    if (query.trim() === '') throw new BadInputError(`${file} ${where}: empty query`);
    checkWellFormed(query, file, where, 'query');
    if (query.trim().length > MAX_QUERY_CHARS)
      throw new BadInputError(`${file} ${where}: query is ${query.trim().length} characters long; the limit is ${MAX_QUERY_CHARS} (MAX_QUERY_CHARS)`);
    const key = queryKey(query);
    const earlier = seenQueries.get(key);
    if (earlier) throw new BadInputError(`${file} ${where}: duplicate query (same as ${earlier}): ${JSON.stringify(query.trim())}`);
    seenQueries.set(key, where);
    const id = optionalText(fields.id ?? fields.query_id, file, where, 'id') ?? `${idPrefix}-${String(index + 1).padStart(4, '0')}`;
    if (!/^[A-Za-z0-9._:-]+$/.test(id)) throw new BadInputError(`${file} ${where}: id ${JSON.stringify(id)} must be [A-Za-z0-9._:-]+`);
    const earlierId = seenIds.get(id);
    if (earlierId) throw new BadInputError(`${file} ${where}: duplicate id "${id}" (also at ${earlierId})`);
    seenIds.set(id, where);
    return {
      query_id: id,
      query: query.trim(),
      label: labelOf(fields.label, options.label, file, where),
      category: optionalText(fields.category, file, where, 'category'),
      pair_id: optionalText(fields.pair_id, file, where, 'pair_id'),
    };
  });
}
