/** Entry point of the `dro` command. Subcommands are registered in commands.ts. */
export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write('usage: dro <command> [options]\n');
    return 0;
  }
  process.stderr.write(`dro: unknown command "${argv[0]}"\n`);
  return 2;
}
