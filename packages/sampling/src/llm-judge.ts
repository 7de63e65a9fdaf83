/**
 * An optional LLM judge: any chat model the runtime serves (a guard model, or the sampled model itself)
 * decides whether a response gives harmful help; its greedy answer is matched against `unsafePattern`.
 * In the DRO protocol this tightens "complied" for harmful queries to "not refused AND judged unsafe"
 * (see verdicts.ts in @dro/artifacts for how the verdict counts).
 *
 * Two formats (params.ts, LLM_JUDGE_FORMATS): "conversation" hands the judge the exchange itself, as
 * [user: query, assistant: response] rendered by the judge model's own chat template — how a guard model
 * such as LlamaGuard reads a conversation (the published protocol) — and reads the first line of its
 * answer; "instruction" sends one user message built from a template and reads the whole answer.
 */
import type { ChatModel } from '@dro/llm';
import type { LlmJudgeParams } from './params.ts';

export interface JudgeItem {
  query: string;
  output: string;
}

export class LlmJudge {
  private readonly unsafe: RegExp;

  constructor(
    private readonly model: ChatModel,
    private readonly params: LlmJudgeParams,
  ) {
    this.unsafe = new RegExp(params.unsafePattern, 'i');
  }

  /** "instruction" format: the judge's chat message for one item. */
  message(item: JudgeItem): string {
    return (this.params.template ?? '').replaceAll('{query}', item.query).replaceAll('{response}', item.output);
  }

  /** The token ids the judge model reads for one item. */
  inputIds(item: JudgeItem): number[] {
    if (this.params.format === 'conversation') {
      const turns = [
        { role: 'user' as const, content: item.query.trim() },
        { role: 'assistant' as const, content: item.output.trim() },
      ];
      return this.model.encodeChat(turns, { addGenerationPrompt: false });
    }
    return this.model.encodeChat([{ role: 'user', content: this.message(item) }], { addGenerationPrompt: true });
  }

  /** Whether the judge's answer text means "unsafe" (conversation format: its first non-empty line). */
  isUnsafeVerdict(answer: string): boolean {
    const read = this.params.format === 'conversation' ? (answer.trim().split('\n')[0] ?? '') : answer;
    return this.unsafe.test(read);
  }

  /** Greedy verdicts, one generate call per item (items differ in length; the judge answers briefly). */
  async judge(items: readonly JudgeItem[], signal?: AbortSignal): Promise<{ unsafe: boolean[]; answers: string[] }> {
    const unsafe: boolean[] = [];
    const answers: string[] = [];
    for (const item of items) {
      const result = await this.model.generate({ inputIds: [this.inputIds(item)], greedy: true, maxNewTokens: this.params.maxNewTokens, signal });
      const answer = result.sequences[0][0].text;
      answers.push(answer);
      unsafe.push(this.isUnsafeVerdict(answer));
    }
    return { unsafe, answers };
  }
}
