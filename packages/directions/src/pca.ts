/**
 * PCA of hidden states, top-k only: the DRO objective needs the mean, the top-k principal directions V_k
 * and nothing else (the paper completes V_k to a full basis only to penalise movement outside the
 * subspace, and that quantity is ‖Δ‖² − ‖V_kᵀΔ‖²).
 *
 * Method: the d×d covariance (float64), then block subspace iteration with a few extra vectors and a
 * Rayleigh–Ritz step (Jacobi on the small block). Deterministic: the start block comes from a seeded
 * generator, and each component's sign is fixed so that its largest-magnitude entry is positive.
 */
import { mulberry32 } from '@dro/llm';
import { gaussian } from './random.ts';

export interface PcaResult {
  /** [d] mean of the rows. */
  mean: Float64Array;
  /** [k, d] row-major, orthonormal rows, by decreasing variance. */
  components: Float64Array;
  /** [k] variance along each component (covariance with 1/(n−1)). */
  explainedVariance: Float64Array;
  /** [k] explainedVariance / total variance. */
  explainedVarianceRatio: Float64Array;
  k: number;
  dim: number;
}

export interface PcaOptions {
  k: number;
  /** Extra block vectors: convergence depends on λ_{k+extra+1}/λ_k rather than λ_{k+1}/λ_k. */
  extra?: number;
  maxIterations?: number;
  tolerance?: number;
  seed?: number;
}

/** Covariance of `rows` ([n, d] row-major), [d, d] with 1/(n−1), and the mean. */
function covariance(rows: Float32Array | Float64Array, n: number, d: number): { cov: Float64Array; mean: Float64Array } {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += rows[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const centred = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) centred[j] = rows[i * d + j] - mean[j];
    // Upper triangle only; mirrored below.
    for (let a = 0; a < d; a++) {
      const ca = centred[a];
      if (ca === 0) continue;
      const rowOffset = a * d;
      for (let b = a; b < d; b++) cov[rowOffset + b] += ca * centred[b];
    }
  }
  const scale = 1 / Math.max(1, n - 1);
  for (let a = 0; a < d; a++)
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] * scale;
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  return { cov, mean };
}

/**
 * Modified Gram–Schmidt on a block of vectors, in place. A vector that vanishes (rank-deficient data:
 * C·Q has rank < p) is replaced by the first standard basis vector not yet in the span, so the block
 * always stays orthonormal and later Ritz values are simply zero.
 */
function orthonormalise(vectors: Float64Array[]): void {
  const d = vectors[0].length;
  let nextBasis = 0;
  for (let i = 0; i < vectors.length; i++) {
    const v = vectors[i];
    for (let attempt = 0; attempt <= d; attempt++) {
      let before = 0;
      for (let t = 0; t < d; t++) before += v[t] * v[t];
      for (let pass = 0; pass < 2; pass++) {
        // Two passes ("twice is enough") keep orthogonality at float64 precision.
        for (let j = 0; j < i; j++) {
          const u = vectors[j];
          let dot = 0;
          for (let t = 0; t < d; t++) dot += u[t] * v[t];
          for (let t = 0; t < d; t++) v[t] -= dot * u[t];
        }
      }
      let norm = 0;
      for (let t = 0; t < d; t++) norm += v[t] * v[t];
      norm = Math.sqrt(norm);
      // Relative test: what is left after removing the span must not be rounding noise.
      if (before > 0 && norm > 1e-9 * Math.sqrt(before)) {
        for (let t = 0; t < d; t++) v[t] /= norm;
        break;
      }
      v.fill(0);
      v[nextBasis++ % d] = 1;
    }
  }
}

function multiply(cov: Float64Array, d: number, v: Float64Array): Float64Array {
  const out = new Float64Array(d);
  for (let a = 0; a < d; a++) {
    let s = 0;
    const offset = a * d;
    for (let b = 0; b < d; b++) s += cov[offset + b] * v[b];
    out[a] = s;
  }
  return out;
}

/** Eigen-decomposition of a small symmetric matrix (p×p, row-major) by cyclic Jacobi rotations. */
export function symmetricEigen(matrix: Float64Array, p: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(p * p);
  for (let i = 0; i < p; i++) v[i * p + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < p; i++) for (let j = i + 1; j < p; j++) off += a[i * p + j] ** 2;
    if (off < 1e-30) break;
    for (let i = 0; i < p; i++)
      for (let j = i + 1; j < p; j++) {
        const aij = a[i * p + j];
        if (Math.abs(aij) < 1e-300) continue;
        const theta = (a[j * p + j] - a[i * p + i]) / (2 * aij);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < p; r++) {
          const ari = a[r * p + i];
          const arj = a[r * p + j];
          a[r * p + i] = c * ari - s * arj;
          a[r * p + j] = s * ari + c * arj;
        }
        for (let r = 0; r < p; r++) {
          const air = a[i * p + r];
          const ajr = a[j * p + r];
          a[i * p + r] = c * air - s * ajr;
          a[j * p + r] = s * air + c * ajr;
        }
        for (let r = 0; r < p; r++) {
          const vri = v[r * p + i];
          const vrj = v[r * p + j];
          v[r * p + i] = c * vri - s * vrj;
          v[r * p + j] = s * vri + c * vrj;
        }
      }
  }
  const values = new Float64Array(p);
  for (let i = 0; i < p; i++) values[i] = a[i * p + i];
  // vectors: column i of v is the eigenvector of values[i].
  return { values, vectors: v };
}

/** Rayleigh–Ritz: eigen-decomposition of B = Qᵀ C Q ([p, p]) given Q and C·Q. */
function rayleighRitz(block: Float64Array[], images: Float64Array[]): { values: Float64Array; vectors: Float64Array } {
  const p = block.length;
  const d = block[0].length;
  const small = new Float64Array(p * p);
  for (let i = 0; i < p; i++)
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += block[i][t] * images[j][t];
      small[i * p + j] = s;
    }
  // Symmetrise: rounding makes QᵀCQ very slightly asymmetric.
  for (let i = 0; i < p; i++)
    for (let j = i + 1; j < p; j++) small[i * p + j] = small[j * p + i] = (small[i * p + j] + small[j * p + i]) / 2;
  return symmetricEigen(small, p);
}

/** Top-k PCA of `rows` ([n, d] row-major). */
export function fitPca(rows: Float32Array | Float64Array, n: number, d: number, options: PcaOptions): PcaResult {
  const { k } = options;
  if (!Number.isInteger(k) || k < 1 || k > d) throw new RangeError(`PCA: k must be an integer in [1, ${d}], got ${k}`);
  if (n < 2) throw new RangeError(`PCA: need at least 2 rows, got ${n}`);
  if (rows.length !== n * d) throw new RangeError(`PCA: ${rows.length} values are not ${n} rows of ${d}`);
  const p = Math.min(d, k + (options.extra ?? 6));
  const maxIterations = options.maxIterations ?? 2000;
  const tolerance = options.tolerance ?? 1e-12;
  const { cov, mean } = covariance(rows, n, d);
  let totalVariance = 0;
  for (let j = 0; j < d; j++) totalVariance += cov[j * d + j];

  const random = mulberry32(options.seed ?? 0);
  let block: Float64Array[] = Array.from({ length: p }, () => Float64Array.from({ length: d }, () => gaussian(random)));
  orthonormalise(block);
  let previous = new Float64Array(k);
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    const images = block.map((v) => multiply(cov, d, v)); // C·Q: p vectors of [d]
    const { values } = rayleighRitz(block, images);
    block = images;
    orthonormalise(block);
    const top = [...values].sort((x, y) => y - x).slice(0, k);
    const change = top.reduce((m, value, i) => Math.max(m, Math.abs(value - previous[i])), 0);
    previous = Float64Array.from(top);
    if (iteration > 2 && change <= tolerance * Math.max(1e-300, Math.abs(top[0]))) break;
  }
  const { values: ritzValues, vectors: ritzVectors } = rayleighRitz(
    block,
    block.map((v) => multiply(cov, d, v)),
  );
  const order = [...ritzValues.keys()].sort((x, y) => ritzValues[y] - ritzValues[x]).slice(0, k);

  const components = new Float64Array(k * d);
  const explainedVariance = new Float64Array(k);
  order.forEach((column, c) => {
    const component = components.subarray(c * d, (c + 1) * d);
    for (let i = 0; i < p; i++) {
      const weight = ritzVectors[i * p + column];
      for (let t = 0; t < d; t++) component[t] += weight * block[i][t];
    }
    let norm = 0;
    let largest = 0;
    for (let t = 0; t < d; t++) {
      norm += component[t] ** 2;
      if (Math.abs(component[t]) > Math.abs(largest)) largest = component[t];
    }
    const scale = (largest < 0 ? -1 : 1) / Math.sqrt(norm);
    for (let t = 0; t < d; t++) component[t] *= scale;
    explainedVariance[c] = Math.max(0, ritzValues[column]);
  });
  const explainedVarianceRatio = explainedVariance.map((v) => (totalVariance > 0 ? v / totalVariance : 0));
  return { mean, components, explainedVariance, explainedVarianceRatio, k, dim: d };
}

/** PCA coordinates of `rows`: (x − mean)·V_kᵀ, [n, k] row-major. */
export function projectRows(pca: PcaResult, rows: Float32Array | Float64Array, n: number): Float64Array {
  const { k, dim: d, mean, components } = pca;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += (rows[i * d + t] - mean[t]) * components[c * d + t];
      out[i * k + c] = s;
    }
  return out;
}
