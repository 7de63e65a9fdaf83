/**
 * An optional LLM judge: any chat model the runtime serves (a guard model, or the sampled model itself)
 * is asked, through a prompt template, whether a response gives harmful help; its greedy answer is
 * matched against `unsafePattern`. In the DRO protocol this can tighten "complied" for harmful queries
 * to "not refused AND judged unsafe".
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

  /** The judge's chat message for one item. */
  message(item: JudgeItem): string {
    return this.params.template.replaceAll('{query}', item.query).replaceAll('{response}', item.output);
  }

  /** Whether the judge's answer text means "unsafe". */
  isUnsafeVerdict(answer: string): boolean {
    return this.unsafe.test(answer);
  }

  /** Greedy verdicts, one generate call per item (items differ in length; the judge answers briefly). */
  async judge(items: readonly JudgeItem[], signal?: AbortSignal): Promise<{ unsafe: boolean[]; answers: string[] }> {
    const unsafe: boolean[] = [];
    const answers: string[] = [];
    for (const item of items) {
      const ids = this.model.encodeChat([{ role: 'user', content: this.message(item) }], { addGenerationPrompt: true });
      const result = await this.model.generate({ inputIds: [ids], greedy: true, maxNewTokens: this.params.maxNewTokens, signal });
      const answer = result.sequences[0][0].text;
      answers.push(answer);
      unsafe.push(this.isUnsafeVerdict(answer));
    }
    return { unsafe, answers };
  }
}
