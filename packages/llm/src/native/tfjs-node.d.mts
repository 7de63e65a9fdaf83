/** Types for tfjs-node.mjs (the built @tensorflow/tfjs-node in $DRO_CACHE/native-tf). */

/** The prefix's folder below $DRO_CACHE, and the manifest setup writes into it last. */
export declare const NATIVE_TF_DIR: string;
export declare const MANIFEST_FILE: string;

/** What to tell a user when the native (cpu) backend is missing. */
export declare const SETUP_HINT: string;

/** The native builds: `cpu` (backend tensorflow) and `gpu` (backend tensorflow-gpu), each in its own prefix. */
export type NativeTfVariant = 'cpu' | 'gpu';
export declare const NATIVE_TF_VARIANTS: Record<NativeTfVariant, { dir: string; setupHint: string }>;

/** $DRO_CACHE/native-tf (cpu, the default) or $DRO_CACHE/native-tf-gpu. */
export declare function nativeTfDir(variant?: NativeTfVariant): string;

/** Absolute path of the built tfjs-node's entry module, or null when setup has not completed. */
export declare function resolveNativeTfjsNode(variant?: NativeTfVariant): string | null;

/** The slice of @tensorflow/tfjs-core that loadNativeTfjsNode touches (pass the module itself). */
export interface TfjsCoreEnv {
  env(): { getBool(flag: string): boolean; set(flag: string, value: boolean): void };
}

/**
 * Imports the built tfjs-node (registers and selects the `tensorflow` backend) with tfjs's duplicate-kernel
 * warnings muted; throws with SETUP_HINT when it is not installed.
 */
export declare function loadNativeTfjsNode(tf: TfjsCoreEnv, variant?: NativeTfVariant): Promise<unknown>;
