/**
 * Every request the S3 store makes goes through here, so three rules hold everywhere (the S3 side of
 * store-files.ts):
 *
 * - Settings from the usual AWS environment: endpoint AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (unset:
 *   AWS itself); region AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1; credentials through the AWS
 *   SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, …).
 *   A custom endpoint (SeaweedFS, Ceph, MinIO, R2, …) gets path-style addressing (`endpoint/bucket/key`),
 *   which every S3-compatible server speaks; AWS gets virtual-hosted addressing.
 * - Honest errors: a missing bucket, missing or refused credentials and a malformed endpoint are
 *   StoreAccessError (bad input: retrying cannot help) naming the URI and what to check; network errors,
 *   timeouts and 5xx are StoreIOError (retried by the engines, after the SDK's own 3 attempts).
 * - Nothing hangs: a server that accepts a connection and then says nothing fails the request after
 *   REQUEST_TIMEOUT_MS of silence.
 *
 * The AWS SDK (a few hundred modules) is imported on first use, so commands on a local store never load it.
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { StoreAccessError, StoreIOError } from './errors.ts';
import { s3Key, s3UriOf, type S3Location } from './s3-location.ts';

type S3Sdk = typeof import('@aws-sdk/client-s3');

/** A socket silent this long fails the request (then the SDK retries): generous for a 100 MB object on a slow link. */
const REQUEST_TIMEOUT_MS = 120_000;
const CONNECT_TIMEOUT_MS = 10_000;

export interface S3Settings {
  /** Custom endpoint URL (S3-compatible servers); undefined for AWS. */
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Explicit credentials (tests, embedding); default: the AWS SDK's credential chain, which reads the environment. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** How long a silent socket may stay silent before the request fails (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

/** The S3 settings the AWS environment variables describe (credentials are left to the SDK's chain). */
export function s3SettingsFromEnv(env: NodeJS.ProcessEnv = process.env): S3Settings {
  const variable = env.AWS_ENDPOINT_URL_S3 ? 'AWS_ENDPOINT_URL_S3' : 'AWS_ENDPOINT_URL';
  const endpoint = env[variable] || undefined;
  if (endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new StoreAccessError(`${variable}=${JSON.stringify(endpoint)} is not a URL (expected e.g. http://127.0.0.1:8333 or https://s3.example.com)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new StoreAccessError(`${variable}=${JSON.stringify(endpoint)}: expected an http:// or https:// URL`);
  }
  const isAws = endpoint === undefined || /(^|\.)amazonaws\.com(\.cn)?$/.test(new URL(endpoint).hostname);
  return { endpoint, region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1', forcePathStyle: !isAws };
}

/** The AWS SDK's S3 client module, loaded on first use. */
export function loadS3Sdk(): Promise<S3Sdk> {
  // The SDK warns on every Node before 22 that its releases after January 2027 will need 22; the version
  // here is pinned, so the warning would only be noise on every dro command that opens an S3 store.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return import('@aws-sdk/client-s3');
}

export interface S3Entry {
  /** Path in the store's layout, relative to the prefix ("objects/ab/ab…"). */
  rel: string;
  size: number;
  mtimeMs: number;
}

/** How a conditional write ended: written, or refused because the object exists (If-None-Match: *). */
export type PutOutcome = 'written' | 'exists';

function errorName(error: unknown): string {
  return (error as { name?: string; Code?: string } | null)?.Code ?? (error as Error | null)?.name ?? 'Error';
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound']);
const REFUSED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden', 'InvalidToken', 'ExpiredToken', 'AuthorizationHeaderMalformed']);

export class S3Objects {
  private clientMemo: Promise<{ sdk: S3Sdk; client: S3Client }> | null = null;

  constructor(
    readonly location: S3Location,
    readonly settings: S3Settings = s3SettingsFromEnv(),
  ) {}

  uri(rel: string): string {
    return s3UriOf(this.location, rel);
  }

  private where(): string {
    return this.settings.endpoint ? `endpoint ${this.settings.endpoint}` : `AWS region ${this.settings.region}`;
  }

  private connect(): Promise<{ sdk: S3Sdk; client: S3Client }> {
    this.clientMemo ??= loadS3Sdk().then((sdk) => ({
      sdk,
      client: new sdk.S3Client({
        region: this.settings.region,
        ...(this.settings.endpoint ? { endpoint: this.settings.endpoint } : {}),
        forcePathStyle: this.settings.forcePathStyle,
        ...(this.settings.credentials ? { credentials: this.settings.credentials } : {}),
        // Checksums only where S3 requires them: the store sends its own (sha256 of every object, which
        // the server checks), and many S3-compatible servers reject the SDK's default trailing CRC32.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // socketTimeout is the inactivity limit (requestTimeout only logs a warning unless told to throw,
        // and would cap a long upload that is making progress).
        requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: this.settings.requestTimeoutMs ?? REQUEST_TIMEOUT_MS },
      }),
    }));
    return this.clientMemo;
  }

  /** The error to throw for a failed request: bad configuration (not retried) or a transient fault. */
  describe(error: unknown, action: string, rel: string): Error {
    if (error instanceof StoreAccessError || error instanceof StoreIOError) return error;
    const name = errorName(error);
    const status = httpStatus(error);
    const uri = this.uri(rel);
    const message = (error as Error | null)?.message ?? String(error);
    if (name === 'NoSuchBucket') {
      return new StoreAccessError(`cannot ${action} ${uri}: bucket "${this.location.bucket}" does not exist at ${this.where()} (create it, or fix the store location)`, { cause: error });
    }
    if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
      return new StoreAccessError(`cannot ${action} ${uri}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)`, { cause: error });
    }
    if (REFUSED.has(name) || status === 403) {
      return new StoreAccessError(`cannot ${action} ${uri}: ${this.where()} refused the request (${name}: ${message}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions`, { cause: error });
    }
    const code = (error as NodeJS.ErrnoException | null)?.code ?? (status ? `HTTP ${status}` : name);
    return new StoreIOError(action, uri, code, `${message} (${this.where()})`, { cause: error });
  }

  /** The SDK and the client, loaded on first use. */
  private async sdk(action: string, rel: string): Promise<{ sdk: S3Sdk; client: S3Client }> {
    return this.connect().catch((error: unknown) => {
      this.clientMemo = null;
      throw this.describe(error, action, rel);
    });
  }

  private key(rel: string): { Bucket: string; Key: string } {
    return { Bucket: this.location.bucket, Key: s3Key(this.location, rel) };
  }

  /** The object's bytes, or null when there is none. */
  async get(rel: string): Promise<Buffer | null> {
    try {
      const { sdk, client } = await this.sdk('read', rel);
      const out = await client.send(new sdk.GetObjectCommand(this.key(rel)));
      const bytes = await out.Body!.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      if (NOT_FOUND.has(errorName(error))) return null;
      throw this.describe(error, 'read', rel);
    }
  }

  /** sha256 (hex) and size of the object, streamed; null when there is none. */
  async sha256(rel: string): Promise<{ sha256: string; size: number } | null> {
    try {
      const { sdk, client } = await this.sdk('read', rel);
      const out = await client.send(new sdk.GetObjectCommand(this.key(rel)));
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of out.Body as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        size += chunk.byteLength;
      }
      return { sha256: hash.digest('hex'), size };
    } catch (error) {
      if (NOT_FOUND.has(errorName(error))) return null;
      throw this.describe(error, 'read', rel);
    }
  }

  /** Size and last-modified time, or null when there is no such object. */
  async head(rel: string): Promise<{ size: number; mtimeMs: number } | null> {
    try {
      const { sdk, client } = await this.sdk('look up', rel);
      const out = await client.send(new sdk.HeadObjectCommand(this.key(rel)));
      return { size: out.ContentLength ?? 0, mtimeMs: out.LastModified?.getTime() ?? 0 };
    } catch (error) {
      if (NOT_FOUND.has(errorName(error)) || httpStatus(error) === 404) {
        if (errorName(error) === 'NoSuchBucket') throw this.describe(error, 'look up', rel);
        return null;
      }
      throw this.describe(error, 'look up', rel);
    }
  }

  /**
   * Write the object whole (an S3 PUT is atomic: readers see the old object or the new one, never a part).
   * Every PUT carries the body's sha256 (`sha256`, hex, when the caller has it already), which the server
   * checks, refusing a body damaged on the way (BadDigest). `ifAbsent`: only create (If-None-Match: *); an
   * existing object is left as it is and 'exists' returned.
   */
  async put(rel: string, body: Uint8Array | string, options: { sha256?: string; ifAbsent?: boolean; contentType?: string } = {}): Promise<PutOutcome> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const sha256 = options.sha256 ?? createHash('sha256').update(bytes).digest('hex');
    try {
      const { sdk, client } = await this.sdk('write', rel);
      await client.send(
        new sdk.PutObjectCommand({
          ...this.key(rel),
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: options.contentType ?? 'application/octet-stream',
          ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
          ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
        }),
      );
      return 'written';
    } catch (error) {
      // 412: the object exists. 409: a concurrent conditional write of the same key is in flight (AWS).
      if (options.ifAbsent && (httpStatus(error) === 412 || httpStatus(error) === 409)) return 'exists';
      throw this.describe(error, 'write', rel);
    }
  }

  /** Delete the object; false if there was none. */
  async delete(rel: string): Promise<boolean> {
    if (!(await this.head(rel))) return false;
    try {
      const { sdk, client } = await this.sdk('delete', rel);
      await client.send(new sdk.DeleteObjectCommand(this.key(rel)));
      return true;
    } catch (error) {
      throw this.describe(error, 'delete', rel);
    }
  }

  /** Every object under `relPrefix` ("objects/", "" for the whole store), in key order. */
  async *list(relPrefix: string): AsyncGenerator<S3Entry> {
    const base = s3Key(this.location, '');
    let token: string | undefined;
    do {
      let out: import('@aws-sdk/client-s3').ListObjectsV2CommandOutput;
      try {
        const { sdk, client } = await this.sdk('list', relPrefix);
        out = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: base + relPrefix, ...(token ? { ContinuationToken: token } : {}) }));
      } catch (error) {
        throw this.describe(error, 'list', relPrefix);
      }
      for (const item of out.Contents ?? []) {
        if (!item.Key?.startsWith(base)) continue;
        yield { rel: item.Key.slice(base.length), size: item.Size ?? 0, mtimeMs: item.LastModified?.getTime() ?? 0 };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /** The first `max` objects under `relPrefix` (for "is this prefix empty?" and examples of what it holds). */
  async first(relPrefix: string, max: number): Promise<S3Entry[]> {
    const out: S3Entry[] = [];
    for await (const entry of this.list(relPrefix)) {
      out.push(entry);
      if (out.length >= max) break;
    }
    return out;
  }
}
