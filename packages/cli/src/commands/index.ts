/** Every `dro` subcommand. Add a module under commands/ and list it here. */
import type { Command } from '../command.ts';
import { gcCommand } from './gc.ts';
import { judgeCommand } from './judge.ts';
import { llmForwardCommand } from './llm-forward.ts';
import { llmGenerateCommand } from './llm-generate.ts';
import { llmInspectCommand } from './llm-inspect.ts';
import { llmModelsCommand } from './llm-models.ts';
import { reportCommand } from './report.ts';
import { runCommand } from './run.ts';
import { stageCommand, stagesCommand } from './stages.ts';
import { statusCommand } from './status.ts';
import { verifyCommand } from './verify.ts';
import { workerCommand } from './worker.ts';

export const commands: Command[] = [runCommand, stagesCommand, stageCommand, statusCommand, reportCommand, gcCommand, verifyCommand, judgeCommand, llmModelsCommand, llmInspectCommand, llmGenerateCommand, llmForwardCommand, workerCommand];
