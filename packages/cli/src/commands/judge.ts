/** `dro judge`: run the string-match refusal judge (either mode) over any responses file (JSONL or Parquet). */
import { JUDGE_MODES, RefusalJudge, defaultJudgedPath, judgeResponsesFile, loadRefusalPhraseList, refusalJudge, type JudgeMode } from '@dro/sampling/judge';
import { CliError, type Command, pathOpt, requirePath, stringOpt } from '../command.ts';

export const judgeCommand: Command = {
  path: ['judge'],
  summary: 'Judge responses (field "output", optional "prompt") for refusals; adds "refused" per row',
  usage: '--input FILE(.jsonl|.parquet) [--output FILE] [--mode project|paper] [--phrases FILE]',
  options: {
    input: { type: 'string' },
    output: { type: 'string' },
    mode: { type: 'string' },
    phrases: { type: 'string' },
  },
  async run(args) {
    const input = requirePath(args, 'input');
    const output = pathOpt(args, 'output') ?? defaultJudgedPath(input);
    const mode = stringOpt(args, 'mode') ?? 'project';
    if (!JUDGE_MODES.includes(mode as JudgeMode)) throw new CliError(`--mode expects ${JUDGE_MODES.join(' or ')}, got "${mode}"`, 2);
    const phrasesFile = pathOpt(args, 'phrases');
    // --phrases replaces the mode's phrase list; the mode still decides how phrases match.
    const judge = phrasesFile ? new RefusalJudge(loadRefusalPhraseList(phrasesFile), mode as JudgeMode) : refusalJudge(mode as JudgeMode);
    const result = judgeResponsesFile(input, output, judge);
    const rate = ((100 * result.refused) / result.rows).toFixed(1);
    process.stdout.write(`judged ${result.rows} rows: ${result.refused} refused (${rate}%) -> ${result.output}\n`);
    return 0;
  },
};
