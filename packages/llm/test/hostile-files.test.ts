/**
 * Hostile model files (issue 14, "Model files and templates"): files that are not regular files, metadata
 * that claims more than the file holds, truncated tensor data, overlapping tensor regions. Each must end
 * in a ModelFormatError naming the file — quickly, without blocking or allocating what the header claims.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, it } from 'vitest';
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

describe('metadata is bounded by the tensors the file really has', () => {
  it('a GGUF block_count of 1e8 is refused at once (not 20 s and 2.5 GB, then a RangeError)', () => {
    const file = writeFile(tinyGguf({ metadata: { 'llama.block_count': gguf.u32(100_000_000) } }));
    expectBadInput(() => loadWeights(file), file, /llama.block_count is 100000000 but the file has weights for 1 layer\(s\) \(indices 0..0\)/);
  });

  it('a config.json num_hidden_layers of 1e8 is refused at once', () => {
    const dir = writeTinyHfModel(path.join(tmp, `hf-${next()}`));
    const configFile = path.join(dir, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), num_hidden_layers: 100_000_000 }));
    expectBadInput(() => loadWeights(dir), dir, /config.json num_hidden_layers is 100000000 but the file has weights for 2 layer\(s\) \(indices 0..1\)/);
  });

  it('a layer count one short of the weights, or weights with a gap, name what the file has', () => {
    const short = writeFile(tinyGguf({ metadata: { 'llama.block_count': gguf.u32(2) } }));
    expectBadInput(() => loadWeights(short), short, /llama.block_count is 2 but the file has weights for 1 layer\(s\)/);
    const gap = writeFile(tinyGguf({ tensors: (ts) => ts.map((t) => ({ ...t, name: t.name.replace('blk.0.', 'blk.1.') })) }));
    expectBadInput(() => loadWeights(gap), gap, /the file has weights for 1 layer\(s\) \(indices 1..1\) but none for layer 0/);
  });
});

describe('truncated tensor data', () => {
  it('a real GGUF cut exactly where its tensor data starts is reported as truncated, with the sizes', () => {
    const real = requireSmolLm2Gguf();
    const { dataOffset, fileSize } = GgufFile.open(real);
    const head = Buffer.alloc(dataOffset);
    const fd = fs.openSync(real, 'r');
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    const file = writeFile(head);
    const problem = new RegExp(
      `tensor "token_embd.weight" data \\[${dataOffset}, \\d+\\) lies past the end of the file \\(${dataOffset} bytes\\): ` +
        `the file is truncated \\(its tensor list needs ${fileSize} bytes, ${fileSize - dataOffset} more\\)`,
    );
    expectBadInput(() => loadWeights(file), file, problem);
  });

  it('a safetensors model file cut short is reported as truncated, with the sizes', () => {
    const dir = writeTinyHfModel(path.join(tmp, `hf-${next()}`));
    const file = path.join(dir, 'model.safetensors');
    const full = fs.statSync(file).size;
    fs.truncateSync(file, full - 100);
    expectBadInput(() => loadWeights(dir), file, new RegExp(`the file is truncated: its header's tensors need ${full} bytes, the file has ${full - 100} \\(100 missing\\)`));
  });

  it('a tiny GGUF cut one byte short', () => {
    const bytes = tinyGguf();
    const file = writeFile(bytes.subarray(0, bytes.length - 1));
    expectBadInput(() => loadWeights(file), file, new RegExp(`the file is truncated \\(its tensor list needs ${bytes.length} bytes, 1 more\\)`));
  });
});

describe('tensors whose data regions overlap are refused (GGUF and safetensors alike)', () => {
  /** The GGUF with tensor `name`'s relative data offset replaced by `offset(relative offset of `of`)`. */
  function aliased(name: string, of: string, shift: number): string {
    const bytes = tinyGguf();
    const parsed = GgufFile.open(writeFile(bytes));
    const target = parsed.tensor(of)!.fileOffset - parsed.dataOffset;
    const at = Buffer.from(bytes).indexOf(Buffer.from(name)) + name.length + 4 + 2 * 8 + 4; // n_dims, 2 dims, type
    new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(at, BigInt(target + shift), true);
    return writeFile(bytes);
  }

  it('GGUF: one tensor placed on top of another, or half over it', () => {
    const same = aliased('blk.0.ffn_up.weight', 'blk.0.ffn_gate.weight', 0);
    expectBadInput(() => loadWeights(same), same, /tensors "blk.0.ffn_(gate|up).weight" \[\d+, \d+\) and "blk.0.ffn_(gate|up).weight" \[\d+, \d+\) overlap/);
    const half = aliased('blk.0.ffn_up.weight', 'blk.0.ffn_gate.weight', 256);
    expectBadInput(() => loadWeights(half), half, /tensors "blk.0.ffn_gate.weight" \[\d+, \d+\) and "blk.0.ffn_up.weight" \[\d+, \d+\) overlap/);
  });

  it('safetensors: overlapping data_offsets in a model directory', () => {
    const dir = writeTinyHfModel(path.join(tmp, `hf-${next()}`));
    const tensors = { 'model.norm.weight': { dtype: 'F32' as const, shape: [64], data: new Float32Array(64) }, x: { dtype: 'F32' as const, shape: [64], data: new Float32Array(64) } };
    const bytes = Buffer.from(writeSafetensors(tensors));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: number[] }>;
    header.x.data_offsets = [128, 384];
    const json = Buffer.from(JSON.stringify(header).padEnd(headerLength, ' '));
    json.copy(bytes, 8);
    const file = path.join(dir, 'model.safetensors');
    fs.writeFileSync(file, bytes);
    expectBadInput(() => loadWeights(dir), file, /overlap/);
  });
});

describe('tokenizer metadata is bounded too', () => {
  it('a SentencePiece vocabulary with a token of a million characters is refused, not derived for hours', () => {
    const tokens = ['<unk>', '<s>', '</s>', 'a', 'b', 'ab', 'a'.repeat(1_000_000)];
    const file = writeFile(tinyGguf({
      metadata: {
        'tokenizer.ggml.model': gguf.str('llama'),
        'tokenizer.ggml.tokens': gguf.strings(tokens),
        'tokenizer.ggml.scores': { type: 9, elementType: 6, value: tokens.map((_, i) => -i) },
        'tokenizer.ggml.token_type': gguf.i32s([2, 3, 3, 1, 1, 1, 1]),
        'tokenizer.ggml.merges': undefined,
        'tokenizer.ggml.eos_token_id': gguf.u32(2),
      },
    }));
    expectBadInput(() => loadTokenizer(file), file, /tokenizer.ggml.tokens: deriving merges from the scores would take over 200000000 steps \(a token of 1000000 characters\)/);
  });
});
