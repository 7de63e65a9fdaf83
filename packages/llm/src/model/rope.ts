/**
 * Rotary position embeddings (RoPE), HF "rotate_half" layout: the head dimension is split in two halves
 * and the pair (x[i], x[i + headDim/2]) is rotated by angle position * invFreq[i].
 *
 * The cos/sin tables are computed on the host per forward call for exactly the positions in use (they
 * differ per row under left padding) and uploaded once, shared by every layer.
 */
import type { RopeScaling } from '../config.ts';

/** invFreq[i] = 1 / theta^(2i / headDim), adjusted by the scaling rule; float32 like HF. */
export function inverseFrequencies(headDim: number, theta: number, scaling: RopeScaling | null): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  if (scaling === null) return inv;
  if (scaling.type === 'linear') {
    // HF divides positions by the factor; dividing the frequencies is the same rotation.
    for (let i = 0; i < half; i++) inv[i] = inv[i] / scaling.factor;
    return inv;
  }
  // Llama 3: long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldContext } = scaling;
  const lowFreqWavelen = oldContext / lowFreqFactor;
  const highFreqWavelen = oldContext / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowFreqWavelen) {
      inv[i] = inv[i] / factor;
    } else if (wavelen >= highFreqWavelen) {
      const smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
    }
  }
  return inv;
}

/**
 * cos and sin tables for the given positions: each [positions.length, headDim] row-major, with the
 * half-table repeated (HF's cat(freqs, freqs)). The angle is rounded to float32 before cos/sin like HF's
 * float32 computation, so long positions agree to float32 precision.
 */
export function rotaryTables(positions: ArrayLike<number>, invFreq: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const headDim = half * 2;
  const cos = new Float32Array(positions.length * headDim);
  const sin = new Float32Array(positions.length * headDim);
  for (let p = 0; p < positions.length; p++) {
    const base = p * headDim;
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[p] * invFreq[i]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[base + i] = c;
      cos[base + half + i] = c;
      sin[base + i] = s;
      sin[base + half + i] = s;
    }
  }
  return { cos, sin };
}
