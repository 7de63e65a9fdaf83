/**
 * An HF model directory as a WeightSource: config.json plus model.safetensors, or shards listed by
 * model.safetensors.index.json (or, without an index, every *.safetensors in the directory).
 * Headers are parsed by @dro/artifacts; tensors are read with bounded positioned reads, one at a time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseSafetensorsHeader, type TensorInfo } from '@dro/artifacts';
import { configFromHf, expectedWeightShapes, type ModelConfig } from '../config.ts';
import { dequantize, GgmlType } from './dequant.ts';
import { ModelFormatError } from './errors.ts';
import { openRegularFile, readSideFile } from './regular-file.ts';
import { assertFinite, checkConfigAgainstTensors, checkWeightShapes, type WeightSource } from './source.ts';

/** safetensors float dtypes we read, mapped to the identical ggml element encodings. */
const FLOAT_DTYPES: Record<string, number> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };

export function readJsonFile(file: string): unknown {
  const text = readSideFile(file);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(file, `not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** The safetensors files of an HF directory, in a stable order. */
export function safetensorsFilesOf(dir: string): string[] {
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(indexPath)) {
    const index = readJsonFile(indexPath) as { weight_map?: unknown };
    const map = index?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      throw new ModelFormatError(indexPath, 'field "weight_map" must be an object of tensor name → file');
    }
    const files = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const f of files) {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\') || !f.endsWith('.safetensors')) {
        throw new ModelFormatError(indexPath, `weight_map names ${JSON.stringify(f)}, not a .safetensors file in the directory`);
      }
    }
    return (files as string[]).sort().map((f) => path.join(dir, f));
  }
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return [single];
  const all = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  if (all.length === 0) throw new ModelFormatError(dir, 'no model.safetensors (or shards with model.safetensors.index.json) in the directory');
  return all.map((f) => path.join(dir, f));
}

/** Parse one file's header with a bounded read (the 8-byte length, then at most that many bytes). */
function readHeader(file: string): TensorInfo[] {
  const { fd, size } = openRegularFile(file);
  try {
    let prefix: Buffer = Buffer.alloc(Math.min(8, size));
    fs.readSync(fd, prefix, 0, prefix.length, 0);
    if (size >= 8) {
      const headerLength = prefix.readBigUInt64LE(0);
      // Only read the header when it fits the file; otherwise let the parser report the bad length.
      if (headerLength <= BigInt(Math.min(100_000_000, size - 8))) {
        prefix = Buffer.alloc(8 + Number(headerLength));
        fs.readSync(fd, prefix, 0, prefix.length, 0);
      }
    }
    checkNotTruncated(prefix, size, file);
    try {
      return parseSafetensorsHeader(prefix, size, file).tensors;
    } catch (err) {
      throw new ModelFormatError(file, (err as Error).message, { cause: err });
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A file whose tensors' data runs past its end is reported as truncated, with the size its header needs
 * (the parser would name only the first tensor out of range). Malformed headers are left to the parser.
 */
function checkNotTruncated(prefix: Buffer, size: number, file: string): void {
  if (prefix.length < 8) return;
  let header: unknown;
  try {
    header = JSON.parse(prefix.subarray(8).toString('utf8'));
  } catch {
    return;
  }
  if (typeof header !== 'object' || header === null) return;
  let dataEnd = 0;
  for (const entry of Object.values(header as Record<string, { data_offsets?: unknown }>)) {
    const end = Array.isArray(entry?.data_offsets) ? entry.data_offsets[1] : undefined;
    if (typeof end === 'number' && Number.isSafeInteger(end)) dataEnd = Math.max(dataEnd, end);
  }
  const needed = prefix.length + dataEnd;
  if (needed > size) {
    throw new ModelFormatError(file, `the file is truncated: its header's tensors need ${needed} bytes, the file has ${size} (${needed - size} missing)`);
  }
}

export function hfConfigOf(dir: string): ModelConfig {
  const configPath = path.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) throw new ModelFormatError(dir, 'no config.json in the model directory');
  return configFromHf(readJsonFile(configPath), configPath);
}

export function safetensorsWeightSource(dir: string, config: ModelConfig, files: string[]): WeightSource {
  const where = new Map<string, { file: string; tensor: TensorInfo }>();
  for (const file of files) {
    for (const tensor of readHeader(file)) {
      if (where.has(tensor.name)) throw new ModelFormatError(file, `tensor "${tensor.name}" also appears in ${where.get(tensor.name)!.file}`);
      where.set(tensor.name, { file, tensor });
    }
  }
  const fields = { numLayers: 'config.json num_hidden_layers', vocabSize: 'config.json vocab_size', hiddenSize: 'hidden_size' };
  checkConfigAgainstTensors(config, where.keys(), (name) => where.get(name)?.tensor.shape, dir, fields);
  checkWeightShapes(config, (name) => where.get(name)?.tensor.shape, dir);
  // Only the weights the config implies; extras (e.g. old rotary_emb.inv_freq buffers) are ignored.
  const expected = expectedWeightShapes(config);
  const needed = (name: string) => expected.has(name);
  const names = [...expected.keys()];
  const lookup = (name: string) => {
    const found = where.get(name);
    if (found === undefined || !needed(name)) throw new ModelFormatError(dir, `no weight named "${name}"`);
    return found;
  };

  return {
    names: () => [...names],
    has: (name) => where.has(name) && needed(name),
    info(name) {
      const { tensor } = lookup(name);
      return { shape: [...tensor.shape], storedAs: tensor.dtype };
    },
    read(name) {
      const { file, tensor } = lookup(name);
      const type = FLOAT_DTYPES[tensor.dtype];
      if (type === undefined) throw new ModelFormatError(file, `weight "${name}" has dtype ${tensor.dtype}; weights must be F32, F16 or BF16`);
      const bytes = Buffer.alloc(tensor.end - tensor.begin);
      const { fd } = openRegularFile(file);
      try {
        let done = 0;
        while (done < bytes.length) {
          const n = fs.readSync(fd, bytes, done, bytes.length - done, tensor.begin + done);
          if (n === 0) throw new ModelFormatError(file, `file ends inside weight "${name}"`);
          done += n;
        }
      } finally {
        fs.closeSync(fd);
      }
      const numElements = tensor.shape.reduce((a, b) => a * b, 1);
      const values = dequantize(type, bytes, numElements);
      assertFinite(values, name, file);
      return values;
    },
  };
}
