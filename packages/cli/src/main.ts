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

/**
 * Process-wide failures that no command's try/catch sees:
 * - a closed stdout or stderr (`dro run 2>&1 | head`, a log collector or ssh session gone): every later write
 *   fails with EPIPE, and the first unhandled one killed dro mid-run, leaving its run record "running". The
 *   output is dropped instead and the command finishes — a run ends with its real terminal record;
 * - an error thrown or rejected outside any promise a command awaits (a stage plugin's timer or floating
 *   promise): Node printed a raw stack trace. It is reported like every other error (name and message; the
 *   stack with DRO_DEBUG=1) and dro exits 1 at once — a run record still "running" then shows as
 *   interrupted, and a rerun resumes from the cache.
 */
export function guardProcess(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return;
      throw error;
    });
  }
  const fatal = (origin: string) => (reason: unknown) => {
    const e = reason instanceof Error ? reason : new Error(String(reason));
    process.stderr.write(`dro: ${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e.message} (${origin} outside the command's own work, e.g. in a stage plugin; stopping)\n`);
    if (process.env.DRO_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', fatal('thrown'));
  process.on('unhandledRejection', fatal('a promise rejected'));
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
