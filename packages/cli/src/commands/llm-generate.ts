/** `dro llm generate`: chat-templated generation from a model (default: the cached SmolLM2 GGUF). */
import { loadModel, type ChatMessage } from '@dro/llm';
import { modelArgument } from './model-option.ts';
import { CliError, flag, numberOpt, requireString, stringOpt, type Command } from '../command.ts';

function intOpt(value: number | undefined, name: string, min: number): number | undefined {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) throw new CliError(`--${name} expects an integer >= ${min}, got ${value}`, 2);
  return value;
}

/** System + user messages from --system / --prompt. */
export function chatMessages(prompt: string, system: string | undefined): ChatMessage[] {
  return system === undefined ? [{ role: 'user', content: prompt }] : [{ role: 'system', content: system }, { role: 'user', content: prompt }];
}

export const llmGenerateCommand: Command = {
  path: ['llm', 'generate'],
  summary: 'Generate a chat reply (greedy when --temperature 0); streams text unless --json',
  usage:
    '[--model ID|PATH] --prompt TEXT [--system TEXT] [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] ' +
    '[--seed S] [--samples N] [--backend wasm|cpu|tensorflow|tensorflow-gpu] [--json]',
  options: {
    model: { type: 'string' },
    prompt: { type: 'string' },
    system: { type: 'string' },
    'max-new-tokens': { type: 'string', default: '128' },
    temperature: { type: 'string', default: '0.7' },
    'top-p': { type: 'string', default: '0.9' },
    'top-k': { type: 'string', default: '0' },
    seed: { type: 'string', default: '0' },
    samples: { type: 'string', default: '1' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const prompt = requireString(args, 'prompt');
    const temperature = numberOpt(args, 'temperature') ?? 0.7;
    if (temperature < 0) throw new CliError(`--temperature must be >= 0, got ${temperature}`, 2);
    const topP = numberOpt(args, 'top-p') ?? 0.9;
    if (!(topP > 0 && topP <= 1)) throw new CliError(`--top-p must be in (0, 1], got ${topP}`, 2);
    const options = {
      maxNewTokens: intOpt(numberOpt(args, 'max-new-tokens'), 'max-new-tokens', 1),
      topK: intOpt(numberOpt(args, 'top-k'), 'top-k', 0),
      seed: intOpt(numberOpt(args, 'seed'), 'seed', 0),
      samples: intOpt(numberOpt(args, 'samples'), 'samples', 1),
      greedy: temperature === 0,
      temperature: temperature === 0 ? 1 : temperature,
      topP,
    };
    const json = flag(args, 'json');
    const model = await loadModel(modelArgument(stringOpt(args, 'model')), { backend: stringOpt(args, 'backend') });
    try {
      const ids = model.encodeChat(chatMessages(prompt, stringOpt(args, 'system')), { addGenerationPrompt: true });
      // Stream the first sample to the terminal as it is generated (text mode only).
      const streamFirst = !json && options.samples === 1;
      const result = await model.generate({
        inputIds: [ids],
        ...options,
        onToken: streamFirst ? (e) => process.stdout.write(e.textDelta) : undefined,
      });
      const samples = result.sequences[0].map((s) => s.text);
      if (json) {
        process.stdout.write(`${JSON.stringify({ text: samples[0], samples })}\n`);
      } else if (streamFirst) {
        process.stdout.write('\n');
      } else {
        samples.forEach((text, i) => process.stdout.write(`--- sample ${i + 1} ---\n${text}\n`));
      }
    } finally {
      model.dispose();
    }
    return 0;
  },
};
