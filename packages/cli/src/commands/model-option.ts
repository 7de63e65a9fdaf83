/** The `--model` option of the `dro llm` commands: a known model's id, a path, or (absent) the default model. */
import { defaultModelPath, resolveModelArgument } from '@dro/llm/weights';

export function modelArgument(value: string | undefined): string {
  return value === undefined ? defaultModelPath() : resolveModelArgument(value);
}
