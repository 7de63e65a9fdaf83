#!/usr/bin/env node
// Runs a TypeScript script of this workspace (tools/, benchmarks) through tsx: `node bin/tsnode.mjs FILE.ts ARGS`.
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

register();
const [script, ...rest] = process.argv.slice(2);
if (!script) {
  console.error('usage: node bin/tsnode.mjs FILE.ts [ARGS...]');
  process.exit(2);
}
process.argv = [process.argv[0], path.resolve(script), ...rest];
await import(pathToFileURL(path.resolve(script)).href);
