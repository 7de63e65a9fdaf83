/**
 * A REAL S3 server for tests: SeaweedFS (`weed server -s3`, Apache-2.0) on free loopback ports with a temp
 * data directory and two access keys whose signatures it checks: an admin key this helper uses to create
 * buckets, and the key the tests (and the stores under test) use, which may read, write and list but not
 * create buckets — as a DRO deployment's key should be. Buckets are never created on upload (SeaweedFS
 * does that by default for admin keys; AWS never does). `node tools/setup/setup.mjs --test` builds
 * the pinned `weed` into `$DRO_CACHE/bin/weed` (ensureSeaweedFs); missing → an error that says so.
 *
 * SeaweedFS runs its master, volume server, filer and S3 gateway in one process; each listens on an HTTP
 * and a gRPC port, all given explicitly (its default gRPC port is the HTTP port + 10000, which may be taken
 * or past 65535 for an ephemeral port).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { droCacheDir } from '../paths.ts';
import { loadS3Sdk, type S3Settings } from '../s3-objects.ts';

export interface SeaweedFsHandle {
  /** "http://127.0.0.1:PORT": the S3 endpoint. */
  endpoint: string;
  /** Settings for S3ArtifactStore / S3Objects, credentials included. */
  settings: S3Settings;
  /** The AWS environment variables a child process needs to reach this server (AWS_ENDPOINT_URL, keys, region). */
  env: Record<string, string>;
  dataDir: string;
  /** Create a bucket (the store never creates buckets). */
  createBucket(name: string): Promise<void>;
  /** SIGTERM, then SIGKILL after 1 s (a graceful SeaweedFS shutdown takes ~25 s); removes the data directory if this helper made it. Idempotent. */
  stop(): Promise<void>;
}

/** `$DRO_CACHE/bin/weed` when setup built it, else null. */
export function findSeaweedFsBinary(): string | null {
  const bin = path.join(droCacheDir(), 'bin', 'weed');
  return existsSync(bin) ? bin : null;
}

/** Asks the kernel for a free loopback port (released before the server binds it; races are retried). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const ACCESS_KEY = 'dro-test-access-key';
const SECRET_KEY = 'dro-test-secret-key-0123456789';
const ADMIN_ACCESS_KEY = 'dro-test-admin-key';
const ADMIN_SECRET_KEY = 'dro-test-admin-secret-0123456789';
const REGION = 'us-east-1';

export interface StartSeaweedFsOptions {
  /** Keep data here (default: a new temp directory, removed by stop()). */
  dataDir?: string;
  startTimeoutMs?: number;
}

/** Starts SeaweedFS and resolves once its S3 gateway answers signed requests. */
export async function startSeaweedFs(options: StartSeaweedFsOptions = {}): Promise<SeaweedFsHandle> {
  const binary = findSeaweedFsBinary();
  if (!binary) throw new Error(`no SeaweedFS binary at ${path.join(droCacheDir(), 'bin', 'weed')}: run \`node tools/setup/setup.mjs --test\` first`);
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'dro-seaweedfs-'));
  const config = path.join(dataDir, 's3-identities.json');
  writeFileSync(
    config,
    JSON.stringify({
      identities: [
        { name: 'dro-test-admin', credentials: [{ accessKey: ADMIN_ACCESS_KEY, secretKey: ADMIN_SECRET_KEY }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] },
        { name: 'dro-test', credentials: [{ accessKey: ACCESS_KEY, secretKey: SECRET_KEY }], actions: ['Read', 'Write', 'List', 'Tagging'] },
      ],
    }),
  );
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await launch(binary, dataDir, config, ownDir, options.startTimeoutMs ?? 90_000);
    } catch (error) {
      lastError = error; // most likely a port was taken between probe and bind: try others
    }
  }
  if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  throw lastError;
}

async function launch(binary: string, dataDir: string, config: string, ownDir: boolean, startTimeoutMs: number): Promise<SeaweedFsHandle> {
  const ports: number[] = [];
  while (ports.length < 8) {
    const port = await freeLoopbackPort();
    if (!ports.includes(port)) ports.push(port);
  }
  const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc] = ports as [number, number, number, number, number, number, number, number];
  const args = [
    'server',
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-dir=${dataDir}`,
    `-master.port=${master}`,
    `-master.port.grpc=${masterGrpc}`,
    // Small volumes: the default reserves 30 GB per volume; tests store a few MB.
    '-master.volumeSizeLimitMB=64',
    `-volume.port=${volume}`,
    `-volume.port.grpc=${volumeGrpc}`,
    '-filer',
    `-filer.port=${filer}`,
    `-filer.port.grpc=${filerGrpc}`,
    '-s3',
    `-s3.port=${s3}`,
    `-s3.port.grpc=${s3Grpc}`,
    `-s3.config=${config}`,
    '-s3.autoCreateBucket=false',
    // Not needed, and each would take a fixed port (8181, 9101) another test server may hold.
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dataDir });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 1000);
        await exited;
        clearTimeout(killTimer);
      }
    })();
    return stopping;
  };
  const endpoint = `http://127.0.0.1:${s3}`;
  const settings: S3Settings = { endpoint, region: REGION, forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } };
  const { S3Client, CreateBucketCommand, ListBucketsCommand } = await loadS3Sdk();
  const admin = { ...settings, credentials: { accessKeyId: ADMIN_ACCESS_KEY, secretAccessKey: ADMIN_SECRET_KEY } };
  const client = new S3Client({
    ...admin,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    // A server still starting may accept a connection and not answer yet: give up on that probe and poll again.
    requestHandler: { connectionTimeout: 2_000, socketTimeout: 5_000 },
  });
  const deadline = Date.now() + startTimeoutMs;
  try {
    while (true) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${binary} exited during startup (${child.exitCode ?? child.signalCode}):\n${output}`);
      const ready = await client.send(new ListBucketsCommand({})).then(
        () => true,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`${binary} did not answer on ${endpoint} within ${startTimeoutMs} ms:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } catch (error) {
    client.destroy();
    await stop();
    throw error;
  }
  const createBucket = async (name: string) => {
    // The filer may still be settling its volume layout right after start: retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
        return;
      } catch (error) {
        const code = (error as { name?: string }).name;
        if (code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') return;
        if (attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  };
  return {
    endpoint,
    settings,
    env: { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY, AWS_REGION: REGION },
    dataDir,
    createBucket,
    stop: async () => {
      client.destroy();
      await stop();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
