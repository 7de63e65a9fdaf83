import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fitPca, projectRows, symmetricEigen } from '../src/pca.ts';
import { mulberry32 } from '@dro/llm';
import { gaussian } from '../src/random.ts';

/** n rows in d dims: mean + Σ_i s_i·a_i·u_i + noise, with orthonormal u_i. Returns rows and u. */
function syntheticData(n: number, d: number, scales: number[], noise: number, seed: number) {
  const random = mulberry32(seed);
  const directions = scales.map(() => Float64Array.from({ length: d }, () => gaussian(random)));
  for (let i = 0; i < directions.length; i++) {
    for (let j = 0; j < i; j++) {
      const dot = directions[i].reduce((s, v, t) => s + v * directions[j][t], 0);
      directions[i].forEach((v, t) => (directions[i][t] = v - dot * directions[j][t]));
    }
    const norm = Math.hypot(...directions[i]);
    directions[i].forEach((v, t) => (directions[i][t] = v / norm));
  }
  const mean = Float64Array.from({ length: d }, () => 3 * gaussian(random));
  const rows = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    const coefficients = scales.map((s) => s * gaussian(random));
    for (let t = 0; t < d; t++) {
      let v = mean[t] + noise * gaussian(random);
      coefficients.forEach((a, i) => (v += a * directions[i][t]));
      rows[r * d + t] = v;
    }
  }
  return { rows, directions };
}

describe('fitPca', () => {
  it('recovers planted directions, variances and ratios', () => {
    const scales = [10, 6, 3, 2];
    const { rows, directions } = syntheticData(400, 48, scales, 0.2, 1);
    const pca = fitPca(rows, 400, 48, { k: 4 });
    for (let c = 0; c < 4; c++) {
      const component = pca.components.subarray(c * 48, (c + 1) * 48);
      expect(Math.hypot(...component)).toBeCloseTo(1, 10);
      const alignment = Math.abs(component.reduce((s, v, t) => s + v * directions[c][t], 0));
      expect(alignment).toBeGreaterThan(0.995);
      // Sample variance of the planted coefficient is near s²; allow sampling error.
      expect(pca.explainedVariance[c] / scales[c] ** 2).toBeGreaterThan(0.75);
      expect(pca.explainedVariance[c] / scales[c] ** 2).toBeLessThan(1.3);
    }
    for (let c = 1; c < 4; c++) expect(pca.explainedVariance[c]).toBeLessThan(pca.explainedVariance[c - 1]);
    const ratioSum = pca.explainedVarianceRatio.reduce((s, v) => s + v, 0);
    expect(ratioSum).toBeGreaterThan(0.95); // noise carries the rest
    expect(ratioSum).toBeLessThan(1);
  });

  it('matches numpy eigh of the covariance (values, vectors up to sign, and our sign convention)', () => {
    const n = 120;
    const d = 24;
    const { rows } = syntheticData(n, d, [5, 4, 2, 1.5, 1], 0.5, 7);
    const pca = fitPca(rows, n, d, { k: 4 });
    const script = `import json,sys,numpy as np
x=np.array(json.loads(sys.stdin.read()),dtype=np.float64).reshape(${n},${d})
w,v=np.linalg.eigh(np.cov(x,rowvar=False)); o=np.argsort(w)[::-1][:4]
v=v[:,o].T; v=v*np.sign(v[np.arange(4),np.abs(v).argmax(1)])[:,None]
print(json.dumps({'mean':x.mean(0).tolist(),'values':w[o].tolist(),'ratio':(w[o]/w.sum()).tolist(),'vectors':v.tolist()}))`;
    const ref = JSON.parse(execFileSync('python3', ['-c', script], { input: JSON.stringify(Array.from(rows)) }).toString());
    for (let t = 0; t < d; t++) expect(pca.mean[t]).toBeCloseTo(ref.mean[t], 5);
    for (let c = 0; c < 4; c++) {
      expect(pca.explainedVariance[c]).toBeCloseTo(ref.values[c], 6);
      expect(pca.explainedVarianceRatio[c]).toBeCloseTo(ref.ratio[c], 8);
      for (let t = 0; t < d; t++) expect(pca.components[c * d + t]).toBeCloseTo(ref.vectors[c][t], 5);
    }
  });

  it('is deterministic, and projections are centred coordinates', () => {
    const { rows } = syntheticData(60, 16, [4, 3, 2, 1], 0.1, 3);
    const a = fitPca(rows, 60, 16, { k: 4 });
    const b = fitPca(rows, 60, 16, { k: 4 });
    expect(Array.from(a.components)).toEqual(Array.from(b.components));
    const coords = projectRows(a, rows, 60);
    for (let c = 0; c < 4; c++) {
      let sum = 0;
      let sumSquares = 0;
      for (let r = 0; r < 60; r++) {
        sum += coords[r * 4 + c];
        sumSquares += coords[r * 4 + c] ** 2;
      }
      expect(Math.abs(sum / 60)).toBeLessThan(1e-6);
      expect(sumSquares / 59).toBeCloseTo(a.explainedVariance[c], 6);
    }
  });

  it('handles rank-deficient data (fewer rows than k+extra) without NaN', () => {
    const { rows } = syntheticData(3, 10, [2, 1], 0, 5);
    const pca = fitPca(rows, 3, 10, { k: 4 });
    expect(pca.components.every(Number.isFinite)).toBe(true);
    expect(pca.explainedVarianceRatio[0] + pca.explainedVarianceRatio[1]).toBeCloseTo(1, 6);
    expect(pca.explainedVariance[2]).toBeCloseTo(0, 6);
  });

  it('rejects bad shapes', () => {
    expect(() => fitPca(new Float32Array(10), 5, 2, { k: 3 })).toThrow(/k must be an integer in \[1, 2\]/);
    expect(() => fitPca(new Float32Array(9), 5, 2, { k: 1 })).toThrow(/9 values are not 5 rows of 2/);
  });
});

describe('symmetricEigen', () => {
  it('diagonalises a small symmetric matrix', () => {
    const m = Float64Array.from([4, 1, 2, 1, 3, 0, 2, 0, 1]);
    const { values, vectors } = symmetricEigen(m, 3);
    for (let i = 0; i < 3; i++) {
      for (let r = 0; r < 3; r++) {
        let mv = 0;
        for (let c = 0; c < 3; c++) mv += m[r * 3 + c] * vectors[c * 3 + i];
        expect(mv).toBeCloseTo(values[i] * vectors[r * 3 + i], 10);
      }
    }
    expect([...values].reduce((s, v) => s + v, 0)).toBeCloseTo(8, 10);
  });
});
