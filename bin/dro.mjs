#!/usr/bin/env node
// `dro` at the repository root (same as `npx dro`).
import '../packages/cli/bin/dro.mjs';
