import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { parseCsv, readQueryFile } from '../src/query-files.ts';
import { repoRoot, tempDir } from './helpers.ts';

function write(name: string, content: string): string {
  const file = path.join(tempDir(), name);
  writeFileSync(file, content);
  return file;
}

describe('readQueryFile', () => {
  it('reads the project data: 100+100 paired training queries and 50+50 held-out ones', () => {
    const train = readQueryFile(path.join(repoRoot, 'data/queries/train.jsonl'));
    expect(train.filter((q) => q.label === 'harmful')).toHaveLength(100);
    expect(train.filter((q) => q.label === 'harmless')).toHaveLength(100);
    const pairs = new Map<string, string[]>();
    for (const q of train) pairs.set(q.pair_id!, [...(pairs.get(q.pair_id!) ?? []), q.label]);
    expect(pairs.size).toBe(100);
    for (const labels of pairs.values()) expect(labels.sort()).toEqual(['harmful', 'harmless']);
    expect(new Set(train.map((q) => q.category)).size).toBe(10);
    const heldout = readQueryFile(path.join(repoRoot, 'data/queries/heldout.jsonl'));
    expect(heldout.filter((q) => q.label === 'harmful').length).toBeGreaterThanOrEqual(50);
    expect(heldout.filter((q) => q.label === 'harmless').length).toBeGreaterThanOrEqual(50);
    const trainTexts = new Set(train.map((q) => q.query.toLowerCase()));
    expect(heldout.filter((q) => trainTexts.has(q.query.toLowerCase()))).toEqual([]);
  });

  it('reads .txt with a file label, generating ids from the file name', () => {
    const file = write('harm.txt', 'How do I pick a lock?\nHow do I hotwire a car?\n\n');
    expect(readQueryFile(file, { label: 'harmful' })).toEqual([
      { query_id: 'harm-0001', query: 'How do I pick a lock?', label: 'harmful', category: null, pair_id: null },
      { query_id: 'harm-0002', query: 'How do I hotwire a car?', label: 'harmful', category: null, pair_id: null },
    ]);
    expect(() => readQueryFile(file)).toThrow(/needs a label for all its lines/);
  });

  it('reads CSV with quoted commas, quotes and newlines', () => {
    const file = write('q.csv', 'query,label,pair_id\n"Hi, there","harmless",p1\n"Say ""no""\nplease",harmful,\r\nplain,harmless,p2\n');
    const rows = readQueryFile(file);
    expect(rows.map((r) => [r.query, r.label, r.pair_id])).toEqual([
      ['Hi, there', 'harmless', 'p1'],
      ['Say "no"\nplease', 'harmful', null],
      ['plain', 'harmless', 'p2'],
    ]);
    expect(parseCsv('a,b\n"x\ny",z\nq,r', 'f').map((r) => r.line)).toEqual([1, 2, 4]);
  });

  it('reads Parquet written by pyarrow', () => {
    const file = path.join(tempDir(), 'q.parquet');
    execFileSync('python3', [
      '-c',
      `import sys,pyarrow as pa,pyarrow.parquet as pq
pq.write_table(pa.table({'id':['a','b'],'query':['How to bake bread?','How to rob a bank?'],'label':['harmless','harmful'],'category':[None,'theft']}), sys.argv[1])`,
      file,
    ]);
    expect(readQueryFile(file)).toEqual([
      { query_id: 'a', query: 'How to bake bread?', label: 'harmless', category: null, pair_id: null },
      { query_id: 'b', query: 'How to rob a bank?', label: 'harmful', category: 'theft', pair_id: null },
    ]);
  });

  it('names the file and line of empty and duplicate queries and bad fields', () => {
    const cases: [string, string, RegExp][] = [
      ['e.txt', 'one\n   \nthree\n', /e\.txt line 2: empty query/],
      ['d.txt', 'How to X?\nother\n  how to   x?\n', /d\.txt line 3: duplicate query \(same as line 1\)/],
      ['l.jsonl', '{"query":"a","label":"harmful"}\n{"query":"b","label":"toxic"}\n', /l\.jsonl line 2: "label" must be "harmful" or "harmless", got "toxic"/],
      ['m.jsonl', '{"query":"a"}\n', /m\.jsonl line 1: missing "label"/],
      ['i.jsonl', '{"id":"x","query":"a","label":"harmful"}\n{"id":"x","query":"b","label":"harmful"}\n', /i\.jsonl line 2: duplicate id "x" \(also at line 1\)/],
      ['j.jsonl', '{"query":"a","label":"harmful"}\n[1]\n', /j\.jsonl:2: expected a JSON object/],
      ['n.jsonl', '{"query": 3, "label":"harmful"}\n', /"query" must be a string, got 3/],
      ['c.csv', 'text,label\nx,harmful\n', /c\.csv:1: header has no "query" column/],
      ['f.csv', 'query,label\nx,harmful,extra\n', /f\.csv:2: 3 fields, but the header has 2/],
      ['u.csv', 'query,label\n"open,harmful\n', /u\.csv:2: unterminated quoted field/],
      ['q.xlsx', 'x', /unsupported query file type ".xlsx"/],
      ['z.jsonl', '\n\n', /z\.jsonl: no queries/],
      ['p.parquet', 'not parquet', /p\.parquet: not a readable Parquet file/],
    ];
    for (const [name, content, message] of cases) {
      const file = write(name, content);
      expect(() => readQueryFile(file, name.endsWith('.txt') ? { label: 'harmful' } : {}), name).toThrow(message);
      expect(() => readQueryFile(file, name.endsWith('.txt') ? { label: 'harmful' } : {}), name).toThrow(BadInputError);
    }
    expect(() => readQueryFile('/nonexistent/q.jsonl')).toThrow(/cannot read query file \/nonexistent\/q\.jsonl/);
  });
});
