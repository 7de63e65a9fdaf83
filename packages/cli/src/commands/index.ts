/** Every `dro` subcommand. Add a module under commands/ and list it here. */
import type { Command } from '../command.ts';

export const commands: Command[] = [];
