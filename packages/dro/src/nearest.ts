/** Nearest vocabulary tokens of each soft-prompt position, by cosine similarity of input embeddings. */
import * as tf from '@tensorflow/tfjs-core';
import type { Embedder } from './soft-prompt.ts';

export interface NearestToken {
  position: number;
  rank: number;
  tokenId: number;
  cosine: number;
}

/**
 * For each row of `soft` ([n, d] row-major), the `top` vocabulary ids whose embeddings have the highest
 * cosine similarity. The embedding table is read in chunks so the [V, d] matrix never exists at once.
 */
export function nearestTokens(model: Embedder, soft: Float32Array, n: number, d: number, vocabSize: number, top: number, chunk = 4096): NearestToken[] {
  if (top === 0) return [];
  const best: { id: number; cos: number }[][] = Array.from({ length: n }, () => []);
  const softT = tf.tidy(() => {
    const s = tf.tensor2d(soft, [n, d]);
    return tf.div(s, tf.add(tf.norm(s, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D; // [n, d] unit rows
  });
  try {
    for (let start = 0; start < vocabSize; start += chunk) {
      const ids = Array.from({ length: Math.min(chunk, vocabSize - start) }, (_, i) => start + i);
      const cos = tf.tidy(() => {
        const e = tf.reshape(model.embed([ids]), [ids.length, d]); // [c, d]
        const unit = tf.div(e, tf.add(tf.norm(e, 'euclidean', 1, true), 1e-12));
        return tf.matMul(softT, unit, false, true).dataSync(); // [n, c]
      });
      for (let p = 0; p < n; p++) {
        const list = best[p]!;
        for (let j = 0; j < ids.length; j++) {
          const c = cos[p * ids.length + j]!;
          if (list.length < top || c > list[list.length - 1]!.cos) {
            list.push({ id: ids[j]!, cos: c });
            list.sort((a, b) => b.cos - a.cos || a.id - b.id);
            if (list.length > top) list.pop();
          }
        }
      }
    }
  } finally {
    softT.dispose();
  }
  return best.flatMap((list, position) => list.map((x, rank) => ({ position, rank, tokenId: x.id, cosine: x.cos })));
}
