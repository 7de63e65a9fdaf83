/**
 * Reverse-mode differentiation over DecoderOps: the backward of decoder-block.ts's functions, derived from
 * the ops they call rather than written a second time. recordingOps() wraps an implementation, runs each
 * op and, when an input depends on the watched value (the input embeddings), records the op's gradient
 * rule; Tape.gradient() then walks the record in reverse and emits each rule with the same ops. Weights,
 * RoPE tables and the attention bias never depend on the watched value, so no weight gradient is emitted.
 *
 * Over graph ops this writes the native backward graph; over eager ops it gives the same gradient as
 * tf.grad (test/decoder-grad.test.ts checks that on every backend). A rule that reads a forward value asks
 * `saved` for it: the graph turns each such value into a placeholder fed from the forward's fetches, so the
 * forward's activations, not a recomputation, feed the backward.
 */
import type { DecoderOps } from './decoder-ops.ts';
import { rmsNormBackward, swiGluBackward } from './decoder-block.ts';

/**
 * An op's gradient rule: output gradients in (null: none reached that output), and which inputs need a
 * gradient (live ones: emitting the others would also make the graph save forward values for nothing);
 * input gradients out (null: none).
 */
type Rule<V> = (dOut: (V | null)[], saved: (v: V) => V, needs: boolean[]) => (V | null)[];

interface Entry<V> {
  inputs: V[];
  outputs: V[];
  rule: Rule<V>;
}

/** Inverse of a permutation. */
const inverse = (perm: number[]): number[] => perm.map((_, i) => perm.indexOf(i));

export class Tape<V> {
  private readonly entries: Entry<V>[] = [];
  /** Values that depend on a watched value (gradients flow only through these). */
  private readonly live = new Set<V>();

  watch(x: V): void {
    this.live.add(x);
  }

  isLive(v: V): boolean {
    return this.live.has(v);
  }

  /** Record an op whose inputs include a live value; its outputs become live. */
  record(inputs: V[], outputs: V[], rule: Rule<V>): void {
    this.entries.push({ inputs, outputs, rule });
    for (const o of outputs) this.live.add(o);
  }

  /**
   * The gradient of sum(output * dOutput) w.r.t. `wrt` (a watched value), emitted with `o`. `saved` maps
   * a forward value a rule reads to what the backward should use for it (identity eagerly).
   */
  gradient(o: DecoderOps<V>, output: V, dOutput: V, wrt: V, saved: (v: V) => V): V {
    const grads = new Map<V, V>([[output, dOutput]]);
    const read = (v: V): V => (this.live.has(v) ? saved(v) : v);
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const { inputs, outputs, rule } = this.entries[i];
      const dOut = outputs.map((out) => grads.get(out) ?? null);
      if (dOut.every((g) => g === null)) continue;
      const dIn = rule(dOut, read, inputs.map((x) => this.live.has(x)));
      inputs.forEach((input, k) => {
        const g = dIn[k];
        if (g === null || !this.live.has(input)) return;
        const existing = grads.get(input);
        grads.set(input, existing === undefined ? g : o.add(existing, g));
      });
    }
    const result = grads.get(wrt);
    if (result === undefined) throw new Error('Tape.gradient: the output does not depend on the watched value');
    return result;
  }
}

/** `base`, recording onto `tape` every op that a live value flows into. */
export function recordingOps<V>(base: DecoderOps<V>, tape: Tape<V>): DecoderOps<V> {
  const o = base;
  /** Run `forward` and, if an input is live, record `rule` for it. */
  const op = <R extends V | V[]>(inputs: V[], forward: () => R, rule: (dOut: V[], saved: (v: V) => V, needs: boolean[]) => (V | null)[]): R => {
    const out = forward();
    if (inputs.some((x) => tape.isLive(x))) {
      const outputs = Array.isArray(out) ? (out as V[]) : [out as V];
      tape.record(inputs, outputs, (dOut, saved, needs) => rule(dOut as V[], saved, needs));
    }
    return out;
  };
  const single = (dOut: V[]): V => dOut[0];
  const noRule = (name: string) => (): never => {
    throw new Error(`decoder-grad: ${name} has no gradient rule (it is not on the differentiated path)`);
  };
  return {
    ...base,
    project: (x, w) => op([x, w], () => o.project(x, w), (d) => [o.projectT(single(d), w), null]),
    matMul: (a, b, transposeA = false, transposeB = false) => {
      if (transposeA || transposeB) return op([a, b], () => o.matMul(a, b, transposeA, transposeB), noRule('a transposed matMul'));
      // d(a b) = dy bᵀ for a, aᵀ dy for b.
      return op([a, b], () => o.matMul(a, b), (d, saved, needs) => [
        needs[0] ? o.matMul(single(d), saved(b), false, true) : null,
        needs[1] ? o.matMul(saved(a), single(d), true, false) : null,
      ]);
    },
    add: (a, b) => op([a, b], () => o.add(a, b), (d) => [single(d), single(d)]),
    mul: (a, b) => op([a, b], () => o.mul(a, b), (d, saved, needs) => [needs[0] ? o.mul(single(d), saved(b)) : null, needs[1] ? o.mul(single(d), saved(a)) : null]),
    softmax: (x) => {
      const y = o.softmax(x);
      // dx = y (dy - sum(dy y)), from the forward's y.
      if (tape.isLive(x)) {
        tape.record([x], [y], (d, saved) => {
          const [dy, ys] = [d[0]!, saved(y)];
          return [o.mul(ys, o.sub(dy, o.sumLast(o.mul(dy, ys))))];
        });
      }
      return y;
    },
    reshape: (x, from, to) => op([x], () => o.reshape(x, from, to), (d) => [o.reshape(single(d), to, from)]),
    transpose: (x, perm) => op([x], () => o.transpose(x, perm), (d) => [o.transpose(single(d), inverse(perm))]),
    split: (x, sizes, axis) => op([x], () => o.split(x, sizes, axis), (d) => {
      if (d.some((g) => g === null)) throw new Error('decoder-grad: a split whose every part is used is all the block has');
      return [o.concat(d, axis)];
    }),
    // Gradients are taken only without a past (empty), where appending is the identity on the new part.
    appendCache: (past, fresh, axis) => op([past, fresh], () => o.appendCache(past, fresh, axis), (d) => [null, single(d)]),
    // Swapping halves is its own inverse (and transpose).
    swapHalves: (x) => op([x], () => o.swapHalves(x), (d) => [o.swapHalves(single(d))]),
    rmsNorm: (x) => {
      const norm = o.rmsNorm(x);
      const { y, r } = norm;
      if (r === undefined) throw new Error('decoder-grad: the recorded ops must expose RMSNorm\'s r');
      // r is an output too, so that the backward reads the forward's r (a saved value), not a recomputation.
      if (tape.isLive(x)) tape.record([x], [y, r], (d, saved) => [rmsNormBackward(o, saved(y), saved(r), d[0]!)]);
      return norm;
    },
    swiGlu: (gate, up) => op([gate, up], () => o.swiGlu(gate, up), (d, saved) => {
      const { dGate, dUp } = swiGluBackward(o, saved(gate), saved(up), single(d));
      return [dGate, dUp];
    }),
    concat: (values, axis) => op(values, () => o.concat(values, axis), noRule('concat')),
    meanRows: (x) => op([x], () => o.meanRows(x), noRule('meanRows')),
    sumLast: (x) => op([x], () => o.sumLast(x), noRule('sumLast')),
    sub: (a, b) => op([a, b], () => o.sub(a, b), noRule('sub')),
    square: (x) => op([x], () => o.square(x), noRule('square')),
    rsqrt: (x) => op([x], () => o.rsqrt(x), noRule('rsqrt')),
    sigmoid: (x) => op([x], () => o.sigmoid(x), noRule('sigmoid')),
  };
}
