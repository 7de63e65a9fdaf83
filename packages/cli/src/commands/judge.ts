/** `dro judge`: run the string-match refusal judge over any responses file (JSONL or Parquet). */
import path from 'node:path';
import { RefusalJudge, defaultJudgedPath, judgeResponsesFile, loadRefusalPhraseList } from '@dro/sampling/judge';
import { type Command, requireString, stringOpt } from '../command.ts';

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
    const input = path.resolve(requireString(args, 'input'));
    const output = path.resolve(stringOpt(args, 'output') ?? defaultJudgedPath(input));
    const phrasesFile = stringOpt(args, 'phrases');
    const judge = phrasesFile ? new RefusalJudge(loadRefusalPhraseList(path.resolve(phrasesFile))) : undefined;
    const result = judgeResponsesFile(input, output, judge);
    const rate = ((100 * result.refused) / result.rows).toFixed(1);
    process.stdout.write(`judged ${result.rows} rows: ${result.refused} refused (${rate}%) -> ${result.output}\n`);
    return 0;
  },
};
