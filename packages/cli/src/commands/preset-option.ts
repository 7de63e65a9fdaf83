/** The `--preset` option of `dro run` and `dro stage`: a preset's name (the list is @dro/experiment's PRESET_NAMES). */
import type { PresetName } from '@dro/experiment';
import { CliError, stringOpt, type ParsedArgs } from '../command.ts';

export async function presetOpt(args: ParsedArgs): Promise<PresetName | undefined> {
  const preset = stringOpt(args, 'preset');
  if (preset === undefined) return undefined;
  const { PRESET_NAMES, isPresetName } = await import('@dro/experiment');
  if (!isPresetName(preset)) throw new CliError(`--preset expects ${PRESET_NAMES.join(' or ')}, got "${preset}"`, 2);
  return preset;
}
