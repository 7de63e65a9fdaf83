/** The `--model` option of the `dro llm` commands: a known model's id, a path (`~` expanded), or (absent) the default model. */
import { resolveUserPath } from '@dro/artifacts';
import { defaultModelPath, resolveModelArgument } from '@dro/llm/weights';

export function modelArgument(value: string | undefined): string {
  return value === undefined ? defaultModelPath() : resolveUserPath(resolveModelArgument(value));
}
