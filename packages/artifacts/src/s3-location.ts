/**
 * `s3://bucket/prefix` store locations: parsed strictly, so a typo is an error naming the part and the
 * rule rather than a store in an unexpected place. The prefix is a folder-like key prefix under which the
 * store keeps the same layout as a directory store (objects/, manifests/, records/, dro-store.json).
 */
import { InvalidNameError } from './errors.ts';

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing "/" ("" for the bucket's top level). */
  prefix: string;
  /** The normalised URI: `s3://bucket` or `s3://bucket/prefix`. */
  uri: string;
}

/** S3 bucket naming rules (virtual-host compatible): 3–63 of a-z 0-9 . -, starting and ending alphanumeric. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** A prefix segment: plain names only, so a key never holds "..", "//", spaces or characters that need escaping. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._=-]{0,254}$/;

/**
 * Whether `value` is meant as an S3 location (as opposed to a directory): anything starting with "s3:",
 * so a typo such as `s3:/bucket` or `S3://bucket` is an error naming the rule, not a local directory "s3:".
 */
export function isS3Uri(value: string): boolean {
  return /^s3:/i.test(value);
}

/** Parse `s3://bucket[/prefix]`; InvalidNameError naming `what` and the rule that failed. */
export function parseS3Uri(value: string, what = 'store location'): S3Location {
  const fail = (why: string): never => {
    throw new InvalidNameError(`${what} ${JSON.stringify(value)}: ${why} (expected s3://bucket or s3://bucket/prefix)`);
  };
  if (!value.startsWith('s3://')) fail('an S3 location starts with "s3://" (lowercase)');
  const rest = value.slice('s3://'.length);
  if (/[?#@\\\s]/.test(rest)) fail('no credentials, query, fragment, backslash or whitespace belong in the URI; credentials come from the AWS environment variables');
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  if (!BUCKET.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    fail(`bucket ${JSON.stringify(bucket)} is not a valid S3 bucket name (3-63 of a-z, 0-9, ".", "-", starting and ending with a letter or digit)`);
  }
  const segments = slash === -1 ? [] : rest.slice(slash + 1).replace(/\/$/, '').split('/');
  if (segments.length === 1 && segments[0] === '') segments.length = 0;
  for (const segment of segments) {
    if (!SEGMENT.test(segment)) {
      fail(`prefix segment ${JSON.stringify(segment)} must be 1-255 of [A-Za-z0-9._=-], not empty and not starting with "." or "-"`);
    }
  }
  const prefix = segments.join('/');
  return { bucket, prefix, uri: prefix ? `s3://${bucket}/${prefix}` : `s3://${bucket}` };
}

/** The object key of `rel` (a path in the store's layout, "/"-separated) under the location's prefix. */
export function s3Key(location: S3Location, rel: string): string {
  return location.prefix ? `${location.prefix}/${rel}` : rel;
}

/** The URI of `rel` under the location, as messages name it. */
export function s3UriOf(location: S3Location, rel: string): string {
  return `${location.uri}/${rel}`;
}
