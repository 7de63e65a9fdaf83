/**
 * The runtime is self-contained: nothing under src/ imports from the repository's tools/ (setup scripts,
 * benchmarks); the native backend's loader lives in src/native/ (issue 15). tools/ may import the runtime.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.join(import.meta.dirname, '..', 'src');

/** Module specifiers of static imports/exports and dynamic import() calls in a source file. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)) found.push(m[1]);
  return found;
}

describe('runtime imports', () => {
  it('no module under src/ imports a file outside packages/llm by path (tools/ in particular)', () => {
    const files = (fs.readdirSync(SRC, { recursive: true }) as string[]).filter((f) => /\.(ts|mts|mjs|js)$/.test(f));
    expect(files.length).toBeGreaterThan(20);
    const offending = files.flatMap((file) => {
      const full = path.join(SRC, file);
      return specifiers(fs.readFileSync(full, 'utf8'))
        .filter((spec) => spec.startsWith('.') && !path.resolve(path.dirname(full), spec).startsWith(path.dirname(SRC) + path.sep))
        .map((spec) => `${file}: ${spec}`);
    });
    expect(offending).toEqual([]);
  });
});
