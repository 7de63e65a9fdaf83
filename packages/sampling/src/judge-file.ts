/**
 * Judge a responses file on disk (JSONL or Parquet): every row's `output` is judged by the string-match
 * judge and a boolean `refused` is added (an existing `refused` is replaced). `prompt` is optional and
 * carried through untouched. The output is written to a temp file and renamed, so a bad input or a
 * crash never leaves a half-written file.
 */
import path from 'node:path';
import { Bool, Table, type Vector, vectorFromArray } from 'apache-arrow';
import { BadInputError, decodeUtf8, parquetToTable, readUserFile, tableToParquet, writeUserFile } from '@dro/artifacts';
import { type RefusalJudge, defaultRefusalJudge } from './judge.ts';

export interface JudgeFileResult {
  output: string;
  rows: number;
  refused: number;
}

type ResponsesFormat = 'jsonl' | 'parquet';

function formatOf(file: string): ResponsesFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.parquet') return 'parquet';
  throw new BadInputError(`${file}: unsupported extension "${ext}" (expected .jsonl or .parquet)`);
}

/** Default output path: "responses.jsonl" → "responses.judged.jsonl". */
export function defaultJudgedPath(input: string): string {
  const ext = path.extname(input);
  return input.slice(0, input.length - ext.length) + '.judged' + ext;
}

function readBytes(file: string): Buffer {
  return readUserFile(file, 'responses file');
}

function judgeJsonl(input: string, judge: RefusalJudge): { text: string; rows: number; refused: number } {
  const lines = decodeUtf8(readBytes(input), input, 'responses file').split(/\r?\n/);
  const out: string[] = [];
  let refused = 0;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new BadInputError(`${input}:${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row))
      throw new BadInputError(`${input}:${i + 1}: expected a JSON object per line`);
    const record = row as Record<string, unknown>;
    if (typeof record.output !== 'string')
      throw new BadInputError(`${input}:${i + 1}: field "output" must be a string (the response to judge)`);
    if (record.prompt !== undefined && record.prompt !== null && typeof record.prompt !== 'string')
      throw new BadInputError(`${input}:${i + 1}: field "prompt" must be a string when present`);
    const isRefusal = judge.isRefusal(record.output);
    if (isRefusal) refused++;
    out.push(JSON.stringify({ ...record, refused: isRefusal }));
  });
  if (out.length === 0) throw new BadInputError(`${input}: no rows to judge`);
  return { text: out.join('\n') + '\n', rows: out.length, refused };
}

function judgeParquet(input: string, judge: RefusalJudge): { bytes: Uint8Array; rows: number; refused: number } {
  const bytes = readBytes(input);
  let table: Table;
  try {
    table = parquetToTable(bytes, input);
  } catch (err) {
    throw new BadInputError(`${input}: not a readable Parquet file (${(err as Error).message})`);
  }
  const outputs = table.getChild('output');
  if (outputs === null) throw new BadInputError(`${input}: no column "output" (the responses to judge)`);
  const verdicts: boolean[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const text: unknown = outputs.get(i);
    if (typeof text !== 'string') throw new BadInputError(`${input}: row ${i}: column "output" must be a non-null string`);
    verdicts.push(judge.isRefusal(text));
  }
  if (verdicts.length === 0) throw new BadInputError(`${input}: no rows to judge`);
  const columns: Record<string, Vector> = {};
  for (const field of table.schema.fields) if (field.name !== 'refused') columns[field.name] = table.getChild(field.name)!;
  columns.refused = vectorFromArray(verdicts, new Bool());
  const judged = new Table(columns);
  return { bytes: tableToParquet(judged), rows: verdicts.length, refused: verdicts.filter(Boolean).length };
}

export function judgeResponsesFile(
  input: string,
  output: string = defaultJudgedPath(input),
  judge: RefusalJudge = defaultRefusalJudge(),
): JudgeFileResult {
  const inFormat = formatOf(input);
  const outFormat = formatOf(output);
  if (inFormat !== outFormat)
    throw new BadInputError(`output ${output} must have the same format as input ${input} (.${inFormat})`);
  if (inFormat === 'jsonl') {
    const { text, rows, refused } = judgeJsonl(input, judge);
    writeUserFile(output, text, 'judged responses');
    return { output, rows, refused };
  }
  const { bytes, rows, refused } = judgeParquet(input, judge);
  writeUserFile(output, bytes, 'judged responses');
  return { output, rows, refused };
}
