/** `dro llm inspect`: what a model file/directory holds, without running it. */
// The weights entry point: inspecting a model needs no tensor backend.
import { inspectModel, type ModelSummary } from '@dro/llm/weights';
import { flag, requirePath, type Command } from '../command.ts';

function formatSummary(s: ModelSummary): string {
  const quant = Object.entries(s.quantTypes)
    .sort((a, b) => b[1] - a[1])
    .map(([type, count]) => `${type}×${count}`)
    .join(', ');
  const rows: [string, string][] = [
    ['model', s.path],
    ['format', s.format],
    ['architecture', s.architecture],
    ['layers', String(s.numLayers)],
    ['hidden size', String(s.hiddenSize)],
    ['intermediate size', String(s.intermediateSize)],
    ['heads / kv heads', `${s.numHeads} / ${s.numKvHeads} (head dim ${s.headDim})`],
    ['vocab size', String(s.vocabSize)],
    ['context length', String(s.maxPositionEmbeddings)],
    ['tied embeddings', s.tieWordEmbeddings ? 'yes' : 'no'],
    ['weight types', quant],
    ['parameters', `${s.parameterCount.toLocaleString('en-US')} (${(s.parameterCount / 1e6).toFixed(1)}M)`],
    ['chat template', s.chatTemplate ? 'yes' : 'no'],
    ['size on disk', `${(s.fileBytes / 2 ** 20).toFixed(1)} MiB`],
    ['sha256', s.digest],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

export const llmInspectCommand: Command = {
  path: ['llm', 'inspect'],
  summary: 'Show a model’s architecture, sizes, weight types, parameter count and chat template',
  usage: '--model PATH(.gguf | HF directory) [--json]',
  options: {
    model: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const summary = inspectModel(requirePath(args, 'model'));
    process.stdout.write(flag(args, 'json') ? `${JSON.stringify(summary)}\n` : formatSummary(summary));
    return 0;
  },
};
