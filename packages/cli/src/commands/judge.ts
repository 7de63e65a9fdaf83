/** `dro judge`: run the string-match refusal judge over any responses file (JSONL or Parquet). */
import { RefusalJudge, defaultJudgedPath, judgeResponsesFile, loadRefusalPhraseList } from '@dro/sampling/judge';
import { type Command, pathOpt, requirePath } from '../command.ts';

export const judgeCommand: Command = {
  path: ['judge'],
  summary: 'Judge responses (field "output", optional "prompt") for refusals; adds "refused" per row',
  usage: '--input FILE(.jsonl|.parquet) [--output FILE] [--phrases FILE]',
  options: {
    input: { type: 'string' },
    output: { type: 'string' },
    phrases: { type: 'string' },
  },
  async run(args) {
    const input = requirePath(args, 'input');
    const output = pathOpt(args, 'output') ?? defaultJudgedPath(input);
    const phrasesFile = pathOpt(args, 'phrases');
    const judge = phrasesFile ? new RefusalJudge(loadRefusalPhraseList(phrasesFile)) : undefined;
    const result = judgeResponsesFile(input, output, judge);
    const rate = ((100 * result.refused) / result.rows).toFixed(1);
    process.stdout.write(`judged ${result.rows} rows: ${result.refused} refused (${rate}%) -> ${result.output}\n`);
    return 0;
  },
};
