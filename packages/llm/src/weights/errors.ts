/**
 * Errors for model files the user pointed us at. They extend the pipeline's BadInputError so engines never
 * retry them and show the message unchanged; the message always starts with the offending file.
 */
import { BadInputError } from '@dro/artifacts';

export class ModelFormatError extends BadInputError {
  override name = 'ModelFormatError';
  constructor(
    readonly file: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${problem}`, options);
  }
}
