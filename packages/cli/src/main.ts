/** Entry point of the `dro` command: finds the longest matching subcommand path and runs it. */
import { CliError, helpText, parseCommandArgs, type Command } from './command.ts';
import { commands } from './commands/index.ts';

function findCommand(argv: string[]): { cmd: Command; rest: string[] } | null {
  let best: { cmd: Command; rest: string[] } | null = null;
  for (const cmd of commands) {
    const n = cmd.path.length;
    if (argv.length >= n && cmd.path.every((w, i) => argv[i] === w)) {
      if (!best || n > best.cmd.path.length) best = { cmd, rest: argv.slice(n) };
    }
  }
  return best;
}

function overview(prefix: string[] = []): string {
  const rows = commands
    .filter((c) => prefix.every((w, i) => c.path[i] === w))
    .map((c) => `  dro ${c.path.join(' ').padEnd(22)} ${c.summary}`);
  return ['usage: dro <command> [options]   (dro <command> --help for details)', '', 'commands:', ...rows, ''].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(overview());
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = commands.some((c) => c.path[0] === argv[0]);
    if (group && (argv.length === 1 || argv[1] === '--help')) {
      process.stdout.write(overview([argv[0]!]));
      return argv.length === 1 ? 2 : 0;
    }
    process.stderr.write(`dro: unknown command "${argv.join(' ')}"\n\n${overview()}`);
    return 2;
  }
  try {
    const parsed = parseCommandArgs(found.cmd, found.rest);
    if (parsed === 'help') {
      process.stdout.write(helpText(found.cmd));
      return 0;
    }
    return await found.cmd.run(parsed);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`dro: ${err.message}\n`);
      return err.exitCode;
    }
    // Errors from stages and loaders carry messages meant for users (file, field, expectation).
    const e = err as Error;
    process.stderr.write(`dro: ${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e.message}\n`);
    if (process.env.DRO_DEBUG) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
