/**
 * Native-only tests (the graph forward and its parity with the eager decoder) skip themselves on the
 * other backends — which would let a CI whose native build failed pass without ever comparing the graph
 * with the eager path. CI sets DRO_REQUIRE_NATIVE=1 for its main run, which turns that skip into a failure.
 */
import { tf } from '../src/index.ts';

export const REQUIRE_NATIVE_ENV = 'DRO_REQUIRE_NATIVE';

/** Whether the active backend is the native 'tensorflow' one. */
export const native = (): boolean => tf.getBackend() === 'tensorflow';

/** Skip the calling test unless the native backend is active; with $DRO_REQUIRE_NATIVE=1, fail instead. */
export function skipUnlessNative(skip: () => void): void {
  if (native()) return;
  if (process.env[REQUIRE_NATIVE_ENV] === '1') {
    throw new Error(`${REQUIRE_NATIVE_ENV}=1 but the tfjs backend is "${tf.getBackend()}": the graph-parity tests need the native TensorFlow backend (node tools/native-tf/setup-native-tf.mjs)`);
  }
  skip();
}
