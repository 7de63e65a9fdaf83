#!/usr/bin/env node
/**
 * Builds a working @tensorflow/tfjs-node (the `tensorflow` tfjs backend: multi-threaded native TensorFlow
 * kernels) without its install step, which downloads libtensorflow from storage.googleapis.com — or, with
 * --gpu, @tensorflow/tfjs-node-gpu (backend `tensorflow-gpu`) against the GPU-enabled `tensorflow` wheel plus
 * the CUDA libraries as pip packages, into $DRO_CACHE/native-tf-gpu:
 *
 *   1. `npm ci --ignore-scripts` of tfjs-node 4.22.0 into an isolated prefix ($DRO_CACHE/native-tf), from
 *      the committed lockfile (prefix.package-lock.json: every package pinned by integrity hash);
 *   2. `pip download` of the pinned tensorflow-cpu wheel from PyPI (sha256 checked); its
 *      libtensorflow_cc.so.2 + libtensorflow_framework.so.2 (sha256 checked) and C headers go to
 *      tfjs-node's deps/ folder, where its binding.gyp links and its rpath ($ORIGIN/../../deps/lib) looks;
 *   3. node-gyp (npm's bundled copy) compiles the addon from tfjs-node's published binding/*.cc against the
 *      local Node headers (--nodedir: no header download), into the folder node-pre-gyp's `find` expects;
 *   4. a smoke test loads it in a fresh process (backend `tensorflow`, TF version, a matMul) before the
 *      prefix is renamed into place. A manifest records what was built from what.
 *
 *   node tools/native-tf/setup-native-tf.mjs            build if missing or built from other pins
 *   node tools/native-tf/setup-native-tf.mjs --check    report only; exit 1 if not installed/up to date
 *   node tools/native-tf/setup-native-tf.mjs --force    rebuild even if up to date
 *   --gpu            the GPU build instead (pins.mjs BUILD_VARIANTS.gpu; ~3.3 GB of wheels, ~6 GB installed)
 *   --no-cuda-libs   with --gpu: skip the CUDA pip packages (a build that can only check it loads and refuses
 *                    to run without a GPU — what CI does on a machine without one)
 *
 * Idempotent: a second run finds the manifest matching the pins and does nothing. Work happens in a temp
 * folder under $DRO_CACHE renamed into place at the end, so an interrupted run leaves no half-built prefix.
 * The repo never depends on tfjs-node: code finds the prefix through packages/llm/src/native/tfjs-node.mjs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256File } from '../setup/hash.mjs';
// The prefix layout is the runtime's (it reads what this script writes).
import { MANIFEST_FILE, NATIVE_TF_VARIANTS } from '../../packages/llm/src/native/tfjs-node.mjs';
import { BUILD_VARIANTS, TENSORFLOW_HEADER_PREFIXES } from './pins.mjs';
import { droCacheDir } from '../../packages/artifacts/src/user-paths.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const cacheRoot = droCacheDir();
const args = new Set(process.argv.slice(2));
const variantName = args.has('--gpu') ? 'gpu' : 'cpu';
const variant = BUILD_VARIANTS[variantName];
const { tfjsNode: TFJS_NODE, wheel: TENSORFLOW_WHEEL, libraries: TENSORFLOW_LIBRARIES } = variant;
const CUDA_WHEELS = args.has('--no-cuda-libs') ? [] : variant.cuda;
const finalDir = path.join(cacheRoot, NATIVE_TF_VARIANTS[variantName].dir);
const backendName = variantName === 'gpu' ? 'tensorflow-gpu' : 'tensorflow';

class SetupError extends Error {}

const log = (msg) => process.stderr.write(`[native-tf] ${msg}\n`);

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: 'pipe', ...opts });
  if (r.error) throw new SetupError(`could not run ${cmd}: ${r.error.message}`);
  return r;
}

function tail(text, lines = 25) {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** What the build depends on; a manifest with other inputs means the prefix must be rebuilt. */
function buildInputs() {
  return {
    tfjsNode: TFJS_NODE,
    wheel: { package: TENSORFLOW_WHEEL.package, version: TENSORFLOW_WHEEL.version, sha256: TENSORFLOW_WHEEL.sha256 },
    libraries: TENSORFLOW_LIBRARIES.map((l) => ({ member: l.member, sha256: l.sha256 })),
    headerPrefixes: TENSORFLOW_HEADER_PREFIXES,
    lockfileSha256: sha256File(path.join(here, variant.prefixFiles[1])),
    ...(variantName === 'gpu' ? { cudaWheels: CUDA_WHEELS.map((w) => ({ name: w.name, version: w.version, sha256: w.sha256 })) } : {}),
  };
}

const tfjsNodeDir = (prefix) => path.join(prefix, 'node_modules', ...TFJS_NODE.name.split('/'));

/** null when the installed prefix is complete and built from the current pins, else the reason it is not. */
function staleReason() {
  const manifestPath = path.join(finalDir, MANIFEST_FILE);
  if (!fs.existsSync(manifestPath)) return `${finalDir} is not built`;
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    return `${manifestPath} does not parse (${err.message})`;
  }
  if (JSON.stringify(manifest.inputs) !== JSON.stringify(buildInputs())) return `${manifestPath} records other pins than pins.mjs`;
  const binding = path.join(finalDir, manifest.bindingPath ?? '');
  if (!manifest.bindingPath || !fs.existsSync(binding)) return `the addon ${binding} is missing`;
  for (const lib of manifest.libraryFiles ?? []) {
    const file = path.join(finalDir, lib.path);
    if (!fs.existsSync(file) || fs.statSync(file).size !== lib.size) return `${file} is missing or changed size`;
  }
  return null;
}

/** The repo's tfjs-core version: tfjs-node's copy must equal it, since both share one global engine. */
function checkTfjsCoreMatchesRepo(prefix) {
  const readVersion = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', '@tensorflow', 'tfjs-core', 'package.json'), 'utf8')).version;
  const ours = readVersion(prefix);
  let repo;
  try {
    repo = readVersion(repoRoot);
  } catch {
    log(`warn  no @tensorflow/tfjs-core in ${repoRoot}/node_modules (run npm ci); cannot compare versions`);
    return;
  }
  if (ours !== repo) {
    throw new SetupError(`tfjs-node's @tensorflow/tfjs-core is ${ours} but the repo uses ${repo}: update TFJS_NODE in pins.mjs and prefix.package-lock.json together`);
  }
}

function installNpmPrefix(prefix) {
  fs.copyFileSync(path.join(here, variant.prefixFiles[0]), path.join(prefix, 'package.json'));
  fs.copyFileSync(path.join(here, variant.prefixFiles[1]), path.join(prefix, 'package-lock.json'));
  log(`npm ci --ignore-scripts ${TFJS_NODE.name}@${TFJS_NODE.version} (pinned lockfile) into ${prefix}`);
  const r = run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: prefix });
  if (r.status !== 0) throw new SetupError(`npm ci in ${prefix} failed (is the npm registry reachable?):\n${tail(r.stdout + r.stderr)}`);
  const pkg = JSON.parse(fs.readFileSync(path.join(tfjsNodeDir(prefix), 'package.json'), 'utf8'));
  if (pkg.version !== TFJS_NODE.version) throw new SetupError(`npm installed ${TFJS_NODE.name}@${pkg.version}, expected ${TFJS_NODE.version}`);
  checkTfjsCoreMatchesRepo(prefix);
}

function downloadWheel(downloadDir) {
  const w = TENSORFLOW_WHEEL;
  log(`pip download ${w.package}==${w.version} (${w.file}) from PyPI`);
  const r = run('python3', [
    '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-q',
    '--python-version', w.pythonVersion, '--implementation', w.implementation, '--abi', w.abi, '--platform', w.platform,
    '-d', downloadDir, `${w.package}==${w.version}`,
  ]);
  if (r.status !== 0) throw new SetupError(`pip could not download ${w.package}==${w.version} (is PyPI reachable? python3 -m pip installed?):\n${tail(r.stdout + r.stderr)}`);
  const wheel = path.join(downloadDir, w.file);
  if (!fs.existsSync(wheel)) throw new SetupError(`pip did not produce ${w.file} in ${downloadDir} (found: ${fs.readdirSync(downloadDir).join(', ') || 'nothing'})`);
  const got = sha256File(wheel);
  if (got !== w.sha256) throw new SetupError(`${w.file} has sha256 ${got}, expected ${w.sha256} (pinned in pins.mjs)`);
  return wheel;
}

// Python's zipfile streams members, so neither the 260 MB wheel nor the 720 MB library is held in memory.
const EXTRACT_PY = `
import json, os, shutil, sys, zipfile
wheel, plan = sys.argv[1], json.loads(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    for member, out in plan['files']:
        if member not in names:
            sys.exit('member %s not found in %s' % (member, wheel))
        with z.open(member) as src, open(out, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
    count = 0
    for name in names:
        rel = name[len(plan['headerRoot']):] if name.startswith(plan['headerRoot']) else None
        if rel and not name.endswith('/') and any(rel.startswith(p) for p in plan['headerPrefixes']):
            out = os.path.join(plan['headerDest'], rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, 'wb') as dst:
                shutil.copyfileobj(src, dst)
            count += 1
    print(count)
`;

/** Libraries to deps/lib (+ the -l link names binding.gyp uses), C headers to deps/include. */
function extractTensorflow(wheel, tfjsNode) {
  const libDir = path.join(tfjsNode, 'deps', 'lib');
  const includeDir = path.join(tfjsNode, 'deps', 'include');
  fs.mkdirSync(libDir, { recursive: true });
  fs.mkdirSync(includeDir, { recursive: true });
  const files = TENSORFLOW_LIBRARIES.map((l) => [l.member, path.join(libDir, path.basename(l.member))]);
  const plan = { files, headerRoot: 'tensorflow/include/', headerPrefixes: TENSORFLOW_HEADER_PREFIXES, headerDest: includeDir };
  log(`extracting ${files.map(([m]) => path.basename(m)).join(', ')} and C headers`);
  const r = run('python3', ['-c', EXTRACT_PY, wheel, JSON.stringify(plan)]);
  if (r.status !== 0) throw new SetupError(`could not extract from ${path.basename(wheel)}: ${tail(r.stderr)}`);
  if (Number(r.stdout.trim()) === 0) throw new SetupError(`no C headers under ${plan.headerRoot} in ${path.basename(wheel)}`);
  for (const lib of TENSORFLOW_LIBRARIES) {
    const file = path.join(libDir, path.basename(lib.member));
    const got = sha256File(file);
    if (got !== lib.sha256) throw new SetupError(`${lib.member} from ${path.basename(wheel)} has sha256 ${got}, expected ${lib.sha256}`);
    fs.symlinkSync(path.basename(lib.member), path.join(libDir, lib.linkName));
  }
}

/** The tags the CUDA wheels carry (py3-none-manylinux_*): pip download needs every one it may pick. */
const CUDA_PLATFORMS = ['manylinux_2_27_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux_2_12_x86_64', 'manylinux2010_x86_64'];

const EXTRACT_NVIDIA_PY = `
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
count = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith('nvidia/') or name.endswith('/') or '..' in name.split('/'):
            continue
        out = os.path.join(dest, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        if (info.external_attr >> 16) & 0o111:
            os.chmod(out, 0o755)
        count += 1
print(count)
`;

/**
 * The CUDA pip packages (pins.mjs CUDA_WHEELS), one at a time (each wheel is deleted once extracted): their
 * nvidia/ trees go to tfjs-node's deps/nvidia/, the runpath of the GPU libtensorflow ($ORIGIN/../nvidia/…/lib).
 */
function installCudaLibraries(downloadDir, tfjsNode) {
  for (const w of CUDA_WHEELS) {
    log(`pip download ${w.name}==${w.version} (${w.file})`);
    const r = run('python3', [
      '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-q',
      '--python-version', '311', '--implementation', 'cp', '--abi', 'cp311', ...CUDA_PLATFORMS.flatMap((p) => ['--platform', p]),
      '-d', downloadDir, `${w.name}==${w.version}`,
    ]);
    if (r.status !== 0) throw new SetupError(`pip could not download ${w.name}==${w.version}:\n${tail(r.stdout + r.stderr)}`);
    const wheel = path.join(downloadDir, w.file);
    if (!fs.existsSync(wheel)) throw new SetupError(`pip did not produce ${w.file} in ${downloadDir}`);
    const got = sha256File(wheel);
    if (got !== w.sha256) throw new SetupError(`${w.file} has sha256 ${got}, expected ${w.sha256} (pinned in pins.mjs)`);
    const x = run('python3', ['-c', EXTRACT_NVIDIA_PY, wheel, path.join(tfjsNode, 'deps')]);
    if (x.status !== 0 || Number(x.stdout.trim()) === 0) throw new SetupError(`could not extract nvidia/ from ${w.file}: ${tail(x.stderr)}`);
    fs.rmSync(wheel);
  }
}

/** npm bundles node-gyp; use that copy rather than fetching one. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const npmRoot = run('npm', ['root', '-g']);
  if (npmRoot.status === 0) candidates.push(path.join(npmRoot.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const found = candidates.find((c) => c && fs.existsSync(c));
  if (!found) throw new SetupError(`node-gyp not found (looked in: ${candidates.filter(Boolean).join(', ')}); it ships with npm`);
  return found;
}

/** A folder D with D/include/node/{node_api.h,common.gypi}: node-gyp's --nodedir, so it downloads no headers. */
function findNodeHeaders() {
  const candidates = [process.env.npm_config_nodedir, path.resolve(process.execPath, '..', '..'), '/usr', '/usr/local'];
  const found = candidates.find(
    (d) => d && fs.existsSync(path.join(d, 'include', 'node', 'node_api.h')) && fs.existsSync(path.join(d, 'include', 'node', 'common.gypi')),
  );
  if (!found) {
    throw new SetupError(
      `Node ${process.version} headers not found (need include/node/node_api.h and common.gypi under one of: ${candidates.filter(Boolean).join(', ')}); ` +
        'install the Node development headers that match this node, or set npm_config_nodedir',
    );
  }
  return found;
}

/** Where tfjs-node will look for the addon: node-pre-gyp's own `find`, which picks the N-API version. */
function bindingTarget(prefix) {
  const requireFromPrefix = createRequire(path.join(tfjsNodeDir(prefix), 'package.json'));
  const preGyp = requireFromPrefix('@mapbox/node-pre-gyp');
  const target = preGyp.find(path.join(tfjsNodeDir(prefix), 'package.json'));
  const napi = /napi-v(\d+)/.exec(target)?.[1];
  if (!napi) throw new SetupError(`cannot tell the N-API version from node-pre-gyp's binding path ${target}`);
  return { target, napi };
}

function compileAddon(prefix) {
  const tfjsNode = tfjsNodeDir(prefix);
  const { target, napi } = bindingTarget(prefix);
  const nodeGyp = findNodeGyp();
  const nodedir = findNodeHeaders();
  log(`compiling tfjs_binding.node (N-API ${napi}) with ${nodeGyp} --nodedir=${nodedir}`);
  const r = run(
    process.execPath,
    [
      nodeGyp, 'rebuild', `--nodedir=${nodedir}`, `--napi_build_version=${napi}`, '--module_name=tfjs_binding',
      `--module_path=${path.dirname(target)}`, '-j', String(Math.max(1, Math.min(2, os.cpus().length))),
    ],
    { cwd: tfjsNode },
  );
  if (r.status !== 0 || !fs.existsSync(target)) {
    throw new SetupError(`node-gyp could not build the addon in ${tfjsNode} (needs g++, make, python3):\n${tail(r.stdout + r.stderr, 40)}`);
  }
  fs.rmSync(path.join(tfjsNode, 'build'), { recursive: true, force: true }); // object files only
  return target;
}

// Runs in a fresh process so a crash in the native library cannot take this script with it.
const SMOKE_JS = `
const tf = require(process.argv[1]);
const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
const b = tf.tensor2d([7, 8, 9, 10, 11, 12], [3, 2]);
const product = Array.from(tf.matMul(a, b).dataSync());
console.log(JSON.stringify({ backend: tf.getBackend(), tfVersion: tf.backend().binding.TF_Version, product, gpu: tf.backend().isUsingGpuDevice }));
`;

function smokeTest(prefix) {
  const entry = path.join(tfjsNodeDir(prefix), 'dist', 'index.js');
  const r = run(process.execPath, ['-e', SMOKE_JS, entry], { env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } });
  if (r.status !== 0) throw new SetupError(`the built addon does not load:\n${tail(r.stdout + r.stderr)}`);
  const { gpu, ...got } = JSON.parse(r.stdout.trim().split('\n').at(-1));
  const want = { backend: 'tensorflow', tfVersion: TENSORFLOW_WHEEL.version, product: [58, 64, 139, 154] };
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new SetupError(`smoke test: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  log(`smoke test ok: backend ${got.backend}, TensorFlow ${got.tfVersion}, matMul [[1,2,3],[4,5,6]]·[[7,8],[9,10],[11,12]] = ${got.product}`);
  // The GPU build is built anywhere; whether this machine has a GPU only decides where it can run.
  if (variantName === 'gpu') log(`this machine: TensorFlow ${gpu ? 'found a GPU' : 'found no GPU (the tensorflow-gpu backend will refuse to run here)'}`);
}

/** One build at a time per cache: a lock file holding the builder's pid (a dead holder's lock is taken over). */
function acquireLock() {
  const lockPath = path.join(cacheRoot, `.${path.basename(finalDir)}.lock`);
  try {
    fs.writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
  } catch {
    const holder = Number(fs.readFileSync(lockPath, 'utf8'));
    let alive = false;
    try {
      process.kill(holder, 0);
      alive = true;
    } catch {
      /* no such process: a stale lock */
    }
    if (alive && holder !== process.pid) throw new SetupError(`another setup-native-tf run (pid ${holder}) holds ${lockPath}`);
    fs.writeFileSync(lockPath, String(process.pid));
  }
  return () => fs.rmSync(lockPath, { force: true });
}

function build() {
  const buildDir = fs.mkdtempSync(path.join(cacheRoot, `.${path.basename(finalDir)}-build-`));
  try {
    installNpmPrefix(buildDir);
    const downloadDir = path.join(buildDir, '.download');
    fs.mkdirSync(downloadDir);
    const wheel = downloadWheel(downloadDir);
    extractTensorflow(wheel, tfjsNodeDir(buildDir));
    fs.rmSync(wheel);
    installCudaLibraries(downloadDir, tfjsNodeDir(buildDir));
    fs.rmSync(downloadDir, { recursive: true, force: true });
    const binding = compileAddon(buildDir);
    smokeTest(buildDir);
    const libDir = path.join(tfjsNodeDir(buildDir), 'deps', 'lib');
    const manifest = {
      inputs: buildInputs(),
      bindingPath: path.relative(buildDir, binding),
      entry: path.relative(buildDir, path.join(tfjsNodeDir(buildDir), 'dist', 'index.js')),
      libraryFiles: TENSORFLOW_LIBRARIES.map((l) => {
        const file = path.join(libDir, path.basename(l.member));
        return { path: path.relative(buildDir, file), size: fs.statSync(file).size, sha256: l.sha256 };
      }),
      builtWith: { node: process.version, napi: process.versions.napi, platform: `${process.platform}-${process.arch}` },
      builtAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(buildDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    fs.chmodSync(buildDir, 0o755); // mkdtemp made it private; the prefix is readable like any node_modules
    // The addon's rpath is relative ($ORIGIN/../../deps/lib), so the prefix works after the rename.
    const oldDir = `${finalDir}.old-${process.pid}`;
    if (fs.existsSync(finalDir)) fs.renameSync(finalDir, oldDir);
    fs.renameSync(buildDir, finalDir);
    fs.rmSync(oldDir, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(buildDir, { recursive: true, force: true });
    throw err;
  }
}

function main() {
  if (args.has('--help') || args.has('-h')) {
    process.stdout.write(`${fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0].replace(/^[\s\S]*?\/\*\*/, '')}\n`);
    return;
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new SetupError(`only linux-x64 is pinned (this is ${process.platform}-${process.arch}): the wheel in pins.mjs is manylinux x86_64`);
  }
  const reason = staleReason();
  if (args.has('--check')) {
    if (reason) throw new SetupError(`${reason} (run node tools/native-tf/setup-native-tf.mjs${variantName === 'gpu' ? ' --gpu' : ''})`);
    log(`ok    ${finalDir} (${TFJS_NODE.name}@${TFJS_NODE.version} on ${TENSORFLOW_WHEEL.package}==${TENSORFLOW_WHEEL.version})`);
    return;
  }
  if (!reason && !args.has('--force')) {
    log(`ok    ${finalDir} is built from the current pins (use --force to rebuild)`);
    return;
  }
  log(reason ? `building: ${reason}` : 'rebuilding (--force)');
  fs.mkdirSync(cacheRoot, { recursive: true });
  const release = acquireLock();
  try {
    build();
  } finally {
    release();
  }
  log(`done: ${finalDir} (select it with DRO_TFJS_BACKEND=${backendName} or --backend ${backendName})`);
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
