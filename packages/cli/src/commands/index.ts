/** Every `dro` subcommand. Add a module under commands/ and list it here. */
import type { Command } from '../command.ts';
import { judgeCommand } from './judge.ts';
import { llmForwardCommand } from './llm-forward.ts';
import { llmGenerateCommand } from './llm-generate.ts';
import { llmInspectCommand } from './llm-inspect.ts';
import { workerCommand } from './worker.ts';

export const commands: Command[] = [judgeCommand, llmInspectCommand, llmGenerateCommand, llmForwardCommand, workerCommand];
