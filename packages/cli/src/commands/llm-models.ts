/** `dro llm models`: the models this project knows by name, where setup puts them and whether they are there. */
import fs from 'node:fs';
import { DEFAULT_MODEL_ID, KNOWN_MODELS, knownModelPath } from '@dro/llm/weights';
import { flag, type Command } from '../command.ts';

export const llmModelsCommand: Command = {
  path: ['llm', 'models'],
  summary: 'List the known models (usable as --model ID), their cache paths and whether setup has fetched them',
  usage: '[--json]',
  options: { json: { type: 'boolean' } },
  async run(args) {
    const rows = KNOWN_MODELS.map((m) => {
      const file = knownModelPath(m.id);
      const size = fs.statSync(file, { throwIfNoEntry: false })?.size;
      return { id: m.id, name: m.name, default: m.id === DEFAULT_MODEL_ID, path: file, present: size === m.bytes, bytes: m.bytes, sha256: m.sha256, role: m.role };
    });
    if (flag(args, 'json')) {
      process.stdout.write(`${JSON.stringify(rows)}\n`);
      return 0;
    }
    const lines = rows.map((r) =>
      [`${r.id}${r.default ? ' (default)' : ''}`, r.name, r.present ? 'present' : 'missing: run node tools/setup/setup.mjs', r.path, `— ${r.role}`].join('  '),
    );
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
