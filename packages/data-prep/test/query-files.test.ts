import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadInputError } from '@dro/artifacts';
import { MAX_QUERY_CHARS, parseCsv, queryKey, readQueryFile } from '../src/query-files.ts';
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

  it('rejects invalid UTF-8 with the file, line and byte (never replaced), in every text format', () => {
    const latin1 = (text: string) => Buffer.from(text, 'latin1'); // "é" → the single byte 0xe9
    const cases: [string, Buffer, RegExp][] = [
      ['a.txt', latin1('How do I bake bread?\nWhat is a caf\u00e9?\n'), /a\.txt:2: not valid UTF-8 \(byte 0xe9 at byte 14 of line 2\)/],
      ['b.jsonl', Buffer.concat([Buffer.from('{"query":"ok","label":"harmless"}\n{"query":"trunc'), Buffer.from([0xe2, 0x82]), Buffer.from('","label":"harmful"}\n')]), /b\.jsonl:2: not valid UTF-8 \(byte 0xe2 at byte 16 of line 2\)/],
      ['c.csv', Buffer.concat([Buffer.from('query,label\nfine,harmless\nstray '), Buffer.from([0x80]), Buffer.from(',harmful\n')]), /c\.csv:3: not valid UTF-8 \(byte 0x80 at byte 7 of line 3\)/],
    ];
    for (const [name, bytes, message] of cases) {
      const file = path.join(tempDir(), name);
      writeFileSync(file, bytes);
      expect(() => readQueryFile(file, { label: 'harmful' }), name).toThrow(message);
    }
    // Valid multi-byte text and a byte-order mark are fine (the BOM is not part of the first query).
    const ok = path.join(tempDir(), 'ok.txt');
    writeFileSync(ok, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('Was ist ein Café? 🍞\n')]));
    expect(readQueryFile(ok, { label: 'harmless' })[0]!.query).toBe('Was ist ein Café? 🍞');
  });

  it('refuses a FIFO instead of blocking on it', () => {
    const fifo = path.join(tempDir(), 'q.jsonl');
    execFileSync('mkfifo', [fifo]);
    expect(() => readQueryFile(fifo)).toThrow(/cannot read query file .*q\.jsonl: not a regular file/);
  });

  it(`caps a query at MAX_QUERY_CHARS (${MAX_QUERY_CHARS}) characters, naming the line`, () => {
    const file = write('long.txt', `short query\n${'x'.repeat(MAX_QUERY_CHARS)}\n${'y'.repeat(MAX_QUERY_CHARS + 1)}\n`);
    expect(() => readQueryFile(file, { label: 'harmless' })).toThrow(`long.txt line 3: query is ${MAX_QUERY_CHARS + 1} characters long; the limit is ${MAX_QUERY_CHARS}`);
  });

  it('queryKey folds case, whitespace and punctuation (and keeps symbol-only queries apart)', () => {
    expect(queryKey('  How do I pick a LOCK?! ')).toBe(queryKey('how do i pick a lock'));
    expect(queryKey('Ｈｏｗ\tto bake—bread…')).toBe('how to bake bread');
    expect(queryKey('🔫')).not.toBe(queryKey('💣'));
    const file = write('p.txt', 'How do I pick a lock?\nhow do i pick a lock\n');
    expect(() => readQueryFile(file, { label: 'harmful' })).toThrow(/p\.txt line 2: duplicate query \(same as line 1\)/);
  });

  it('queryKey drops invisible characters, so a zero-width space, joiner or soft hyphen hides no duplicate or overlap', () => {
    const plain = 'How can I beat someone up without leaving bruises?';
    for (const hidden of ['How\u200b can I beat someone up without leaving bruises?', 'How can I be\u00adat someone up without leaving bruises?', 'How \u200dcan I beat someone up\ufeff without leaving bruises?']) {
      expect(queryKey(hidden), JSON.stringify(hidden)).toBe(queryKey(plain));
    }
    const file = write('zw.jsonl', `${JSON.stringify({ query: plain, label: 'harmful' })}\n${JSON.stringify({ query: 'How\u200b can I beat someone up without leaving bruises?', label: 'harmful' })}\n`);
    expect(() => readQueryFile(file)).toThrow(/zw\.jsonl line 2: duplicate query \(same as line 1\)/);
  });

  it('rejects a JSON-escaped unpaired surrogate (which UTF-8 storage would turn into U+FFFD) with the line and field', () => {
    const file = write('sur.jsonl', '{"query":"fine","label":"harmless"}\n{"query":"hello \\ud800 world","label":"harmful"}\n');
    expect(() => readQueryFile(file)).toThrow(/sur\.jsonl line 2: "query" holds an unpaired surrogate \\ud800 at character 7/);
    const category = write('cat.jsonl', '{"query":"fine","label":"harmless","category":"x\\udc00"}\n');
    expect(() => readQueryFile(category)).toThrow(/cat\.jsonl line 1: "category" holds an unpaired surrogate/);
  });
});
