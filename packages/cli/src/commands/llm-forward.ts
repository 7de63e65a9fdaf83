/** `dro llm forward`: one forward pass over a chat prompt — next-token top-10 and the final hidden state. */
import { lastTokenHidden, loadModel, tf } from '@dro/llm';
import { modelArgument } from './model-option.ts';
import { flag, requireString, stringOpt, type Command } from '../command.ts';
import { chatMessages } from './llm-generate.ts';

export const llmForwardCommand: Command = {
  path: ['llm', 'forward'],
  summary: 'Run one forward pass: top-10 next-token logits, final hidden state L2 norm and first 8 values',
  usage: '[--model ID|PATH] --prompt TEXT [--system TEXT] [--backend wasm|cpu|tensorflow|tensorflow-gpu] [--json]',
  options: {
    model: { type: 'string' },
    prompt: { type: 'string' },
    system: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const prompt = requireString(args, 'prompt');
    const model = await loadModel(modelArgument(stringOpt(args, 'model')), { backend: stringOpt(args, 'backend') });
    try {
      const ids = model.encodeChat(chatMessages(prompt, stringOpt(args, 'system')), { addGenerationPrompt: true });
      const out = model.forward({ inputIds: [ids], logitsFor: 'last' });
      const hiddenTensor = lastTokenHidden(out.lastHidden);
      const logits = out.logits.dataSync() as Float32Array; // [V]
      const hidden = Array.from(hiddenTensor.dataSync()); // [d]
      tf.dispose([out.logits, out.lastHidden, hiddenTensor]);
      const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 10);
      const top = order.map((id) => ({ id, token: model.tokenizer.decode([id]), logit: logits[id] }));
      const summary = {
        model: model.digest,
        backend: model.backend,
        numTokens: ids.length,
        top,
        hiddenNorm: Math.sqrt(hidden.reduce((s, v) => s + v * v, 0)),
        hiddenFirst8: hidden.slice(0, 8),
      };
      if (flag(args, 'json')) {
        process.stdout.write(`${JSON.stringify(summary)}\n`);
      } else {
        const lines = [`tokens: ${ids.length}   backend: ${model.backend}`, 'next-token top 10:'];
        for (const t of top) lines.push(`  ${String(t.id).padStart(6)}  ${t.logit.toFixed(4).padStart(9)}  ${JSON.stringify(t.token)}`);
        lines.push(`final hidden state: L2 norm ${summary.hiddenNorm.toFixed(4)}, first 8 [${hidden.slice(0, 8).map((v) => v.toFixed(4)).join(', ')}]`);
        process.stdout.write(lines.join('\n') + '\n');
      }
    } finally {
      model.dispose();
    }
    return 0;
  },
};
