#!/usr/bin/env node
// Launcher for the `dro` command: the workspace ships TypeScript sources, loaded through tsx.
import { register } from 'tsx/esm/api';

register();
const { guardProcess, main } = await import('../src/main.ts');
guardProcess();
process.exitCode = await main(process.argv.slice(2));
