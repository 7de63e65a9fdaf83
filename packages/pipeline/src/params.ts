/**
 * Reading a stage's raw params (JSON from a config, a preset, a DAG node) into its typed params: one
 * reader for every stage, so every stage's errors read alike — `<stage> params: <field>: expected <what>,
 * got <value>` — and an unknown field (a typo) is an error, never silently ignored.
 *
 *   const r = ParamReader.of('extract', raw);
 *   const params = { batchSize: r.int('batchSize', 8, 1), sets: r.strings('sets', []) };
 *   r.done(); // every field of raw was read
 *
 * A field that is absent takes its fallback; `null` is a value (an error, except where a reader allows it).
 */
import { BadInputError } from '@dro/artifacts';

export class ParamReader {
  private readonly seen = new Set<string>();

  private constructor(
    /** The stage the params belong to (the errors' first words). */
    readonly stage: string,
    /** The raw object being read (for fields read by hand: mark them). */
    readonly raw: Readonly<Record<string, unknown>>,
    private readonly prefix: string,
  ) {}

  /** A reader over `raw`: undefined or null is an empty object, anything else but an object an error. */
  static of(stage: string, raw: unknown, prefix = ''): ParamReader {
    if (raw === undefined || raw === null) return new ParamReader(stage, {}, prefix);
    if (typeof raw !== 'object' || Array.isArray(raw)) throw ParamReader.error(stage, prefix || '(params)', 'an object', raw);
    return new ParamReader(stage, raw as Record<string, unknown>, prefix);
  }

  private static error(stage: string, field: string, expected: string, got: unknown): BadInputError {
    return new BadInputError(`${stage} params: ${field}: expected ${expected}, got ${JSON.stringify(got)}`);
  }

  /** The field's full name (`boundary.folds`), recording `key` as read. */
  field(key: string): string {
    this.seen.add(key);
    return this.prefix ? `${this.prefix}.${key}` : key;
  }

  /** Record `key` as known without reading it (fields handled by hand). */
  mark(key: string): void {
    this.seen.add(key);
  }

  /** Fail on field `key` (a check the typed readers do not cover). */
  fail(key: string, expected: string, got: unknown): never {
    throw ParamReader.error(this.stage, this.field(key), expected, got);
  }

  /** A finite number passing `check`. */
  number(key: string, fallback: number, check: (v: number) => boolean, expected: string): number {
    const v = this.raw[key];
    this.field(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) this.fail(key, expected, v);
    return v as number;
  }

  /** An integer ≥ min. */
  int(key: string, fallback: number, min: number): number {
    return this.number(key, fallback, (v) => Number.isInteger(v) && v >= min, `an integer ≥ ${min}`);
  }

  /** null, or an integer ≥ min. */
  nullableInt(key: string, fallback: number | null, min: number): number | null {
    const v = this.raw[key];
    this.field(key);
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `null or an integer ≥ ${min}`, v);
    return v as number;
  }

  /** A string matching `pattern` (by default an id: letters, digits and . _ : -); required when fallback is undefined. */
  string(key: string, fallback: string | undefined, pattern = /^[A-Za-z0-9._:-]+$/): string {
    const v = this.raw[key] === undefined ? fallback : this.raw[key];
    this.field(key);
    if (typeof v !== 'string' || !pattern.test(v)) this.fail(key, `a string matching ${pattern}`, v);
    return v as string;
  }

  /** One of `allowed`. */
  oneOf<T extends string>(key: string, fallback: T, allowed: readonly T[]): T {
    const v = this.raw[key] === undefined ? fallback : this.raw[key];
    this.field(key);
    if (!allowed.includes(v as T)) this.fail(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, v);
    return v as T;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.raw[key] === undefined ? fallback : this.raw[key];
    this.field(key);
    if (typeof v !== 'boolean') this.fail(key, 'true or false', v);
    return v as boolean;
  }

  /** An array of non-empty strings (a copy). */
  strings(key: string, fallback: readonly string[], expected = 'an array of non-empty strings'): string[] {
    const v = this.raw[key] === undefined ? fallback : this.raw[key];
    this.field(key);
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) this.fail(key, expected, v);
    return [...(v as string[])];
  }

  /** A reader over the object field `key` (absent or null: empty); call its done() too. */
  child(key: string): ParamReader {
    return ParamReader.of(this.stage, this.raw[key], this.field(key));
  }

  /** Reject fields nobody read (typos must not pass silently). */
  done(): void {
    for (const key of Object.keys(this.raw)) {
      if (!this.seen.has(key)) throw ParamReader.error(this.stage, this.prefix ? `${this.prefix}.${key}` : key, `one of the known fields (${[...this.seen].join(', ')})`, key);
    }
  }
}
