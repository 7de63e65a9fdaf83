/**
 * Hostile model files (issue 14, "Model files and templates"): files that are not regular files, metadata
 * that claims more than the file holds, truncated tensor data, overlapping tensor regions. Each must end
 * in a ModelFormatError naming the file — quickly, without blocking or allocating what the header claims.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '@dro/artifacts';
import { writeTinyHfModel } from '../src/testing/tiny-model.ts';
import { loadTokenizer } from '../src/tokenizer/tokenizer.ts';
import { requireSmolLm2Gguf } from '../src/weights/assets.ts';
import { GgufFile } from '../src/weights/gguf.ts';
import { gguf } from '../src/weights/gguf-writer.ts';
import { loadWeights } from '../src/weights/load.ts';
import { expectBadInput, scratchDir, tinyGguf } from './bad-input-helpers.ts';

const { tmp, writeFile, next } = scratchDir('dro-hostile-');

/**
 * A FIFO at `file`. Opening a FIFO for reading blocks until a writer comes; so that a regression fails
 * instead of hanging the test run, a helper process opens it for writing after a few seconds (and gives
 * up by itself after 20 s). With the fix nothing waits for it.
 */
const unblockers: ChildProcess[] = [];
afterAll(() => {
  for (const child of unblockers) if (child.exitCode === null) child.kill();
});
function fifo(file: string): string {
  fs.rmSync(file, { force: true });
  execFileSync('mkfifo', [file]);
  const child = spawn('timeout', ['20', 'sh', '-c', 'sleep 4; exec 3>"$0"', file], { stdio: 'ignore' });
  unblockers.push(child);
  return file;
}

describe('files that are not regular files are refused, never opened blocking', () => {
  it('a GGUF path that is a FIFO', () => {
    const file = fifo(path.join(tmp, `fifo-${next()}.gguf`));
    expectBadInput(() => loadWeights(file), file, /is a FIFO \(named pipe\); model files must be regular files/);
    expectBadInput(() => loadTokenizer(file), file, /is a FIFO/);
  });

  it('a GGUF path that is a character device', () => {
    expectBadInput(() => loadWeights('/dev/zero'), '/dev/zero', /is a character device/);
  });

  it('each file of an HF directory (config, weights, shards index, tokenizer files, chat template, generation config)', () => {
    const cases: [string, (dir: string) => unknown][] = [
      ['config.json', loadWeights],
      ['model.safetensors', loadWeights],
      ['generation_config.json', loadWeights],
      ['tokenizer.json', loadTokenizer],
      ['tokenizer_config.json', loadTokenizer],
      ['chat_template.jinja', loadTokenizer],
      ['model.safetensors.index.json', loadWeights],
    ];
    for (const [name, load] of cases) {
      const dir = writeTinyHfModel(path.join(tmp, `hf-${next()}`));
      if (name === 'chat_template.jinja') {
        // The template file is read only when tokenizer_config.json has none.
        const configFile = path.join(dir, 'tokenizer_config.json');
        const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
        delete config.chat_template;
        fs.writeFileSync(configFile, JSON.stringify(config));
      }
      const file = fifo(path.join(dir, name));
      expectBadInput(() => load(dir), file, /is a FIFO/);
    }
  });

  it('a safetensors shard named by the index that is a FIFO', () => {
    const dir = writeTinyHfModel(path.join(tmp, `hf-${next()}`));
    fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'model-00001-of-00002.safetensors'));
    const shard = fifo(path.join(dir, 'model-00002-of-00002.safetensors'));
    const weightMap = { 'model.norm.weight': 'model-00002-of-00002.safetensors', 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors' };
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    expectBadInput(() => loadWeights(dir), shard, /is a FIFO/);
  });

  it('a directory where a file is expected', () => {
    const dir = writeTinyHfModel(path.join(tmp, `hf-${next()}`));
    fs.rmSync(path.join(dir, 'config.json'));
    fs.mkdirSync(path.join(dir, 'config.json'));
    expectBadInput(() => loadWeights(dir), path.join(dir, 'config.json'), /is a directory/);
  });
});
