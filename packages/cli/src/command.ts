/**
 * The tiny command framework behind `dro`: each subcommand is a module exporting a `Command`,
 * registered in commands/index.ts. Options are parsed with node:util's parseArgs so every command gets
 * the same --help and the same errors for unknown flags.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolveStoreLocation, resolveUserPath } from '@dro/artifacts';

export interface Command {
  /** Words after `dro`, e.g. ["llm", "inspect"]. */
  path: string[];
  summary: string;
  /** Usage text shown by --help (without the leading "usage: dro ..."). */
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Whether positional arguments are accepted. */
  allowPositionals?: boolean;
  run(args: ParsedArgs): Promise<number>;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/** An error whose message is shown to the user as is, with exit code 2 (usage) or 1 (failure). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function parseCommandArgs(cmd: Command, argv: string[]): ParsedArgs | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: cmd.options,
      allowPositionals: cmd.allowPositionals ?? false,
      strict: true,
    });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (err) {
    throw new CliError(`${(err as Error).message}\nusage: dro ${cmd.path.join(' ')} ${cmd.usage}`, 2);
  }
}

export function helpText(cmd: Command): string {
  const lines = [`usage: dro ${cmd.path.join(' ')} ${cmd.usage}`, '', cmd.summary, ''];
  const opts = Object.entries(cmd.options);
  if (opts.length > 0) {
    lines.push('options:');
    for (const [name, o] of opts) {
      const arg = o.type === 'string' ? ` <${name}>` : '';
      lines.push(`  --${name}${arg}${o.default !== undefined ? `  (default: ${String(o.default)})` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Typed accessors so commands do not repeat the same string/number checks. */
export function stringOpt(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireString(args: ParsedArgs, name: string): string {
  const v = stringOpt(args, name);
  if (v === undefined || v === '') throw new CliError(`missing required option --${name}`, 2);
  return v;
}

/** A path option (file or directory) as an absolute path: `~` expanded, relative to the working directory. */
export function pathOpt(args: ParsedArgs, name: string): string | undefined {
  const v = stringOpt(args, name);
  if (v === '') throw new CliError(`--${name} expects a path, got ""`, 2);
  return v === undefined ? undefined : resolveUserPath(v);
}

/** `--store`: a directory (as pathOpt) or an s3://bucket/prefix URI; anything else is a usage error naming the flag. */
export function storeOpt(args: ParsedArgs): string | undefined {
  const v = stringOpt(args, 'store');
  if (v === '') throw new CliError('--store expects a directory or an s3://bucket/prefix URI, got ""', 2);
  if (v === undefined) return undefined;
  try {
    return resolveStoreLocation(v, process.cwd(), '--store');
  } catch (error) {
    throw new CliError((error as Error).message, 2);
  }
}

export function requirePath(args: ParsedArgs, name: string): string {
  return resolveUserPath(requireString(args, name));
}

export function numberOpt(args: ParsedArgs, name: string): number | undefined {
  const v = stringOpt(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new CliError(`--${name} expects a number, got "${v}"`, 2);
  return n;
}

/** A whole number ≥ 1 (slots, concurrency): 0, negatives and fractions are usage errors naming the flag. */
export function positiveIntOpt(args: ParsedArgs, name: string): number | undefined {
  const n = numberOpt(args, name);
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new CliError(`--${name} expects a whole number ≥ 1, got ${stringOpt(args, name)}`, 2);
  return n;
}

/** A number ≥ 0 (seconds, minutes). */
export function nonNegativeOpt(args: ParsedArgs, name: string): number | undefined {
  const n = numberOpt(args, name);
  if (n !== undefined && n < 0) throw new CliError(`--${name} expects a number ≥ 0, got ${stringOpt(args, name)}`, 2);
  return n;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}
