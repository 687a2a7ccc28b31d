/**
 * Picks the TF.js backend once per process: the CUDA build (the Batch image), the native CPU
 * build, or pure JavaScript with dlops's fast CPU kernels. The native packages are optional
 * dependencies (tfjs-node downloads libtensorflow at install, which fails without internet),
 * so each is required inside try/catch and a missing one falls through to the next.
 */
import * as tfjs from '@tensorflow/tfjs';
import { enableFastCpuKernels, enableFastCpuTraining } from './fastcpu';
import { logger } from './logger';

export type Tf = typeof tfjs;

export type BackendName = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';

export type NativeBackendName = 'tfjs-node-gpu' | 'tfjs-node';

/** The native candidates, best first; each package exports the whole TF.js API. */
export const NATIVE_BACKENDS: ReadonlyArray<{ readonly name: NativeBackendName; readonly module: string }> = [
  { name: 'tfjs-node-gpu', module: '@tensorflow/tfjs-node-gpu' },
  { name: 'tfjs-node', module: '@tensorflow/tfjs-node' },
];

export interface LoadedTf {
  readonly tf: Tf;
  readonly backend: BackendName;
  /** Names of dlops's fast kernels registered (empty on the native backends). */
  readonly kernels: string[];
  /** Why each better candidate was skipped, e.g. "@tensorflow/tfjs-node-gpu: Cannot find module ...". */
  readonly skipped: string[];
}

export interface LoadTfOptions {
  /**
   * Best backend allowed: 'cpu' (or 'wasm') skips the native packages (reproducible runs without libtensorflow).
   * @default 'tfjs-node-gpu' - try every candidate
   */
  readonly prefer?: BackendName;
  /**
   * Without a native package, train on the WebAssembly backend with dlops's gradient kernels
   * (enableFastCpuTraining: about 1.8x the pure-JS kernels on the seed network here), falling
   * back to 'cpu' when @tensorflow/tfjs-backend-wasm cannot load. Off for inference-side callers,
   * whose ONNX parity and metrics are measured against the 'cpu' kernels.
   * @default false - pure JavaScript ('cpu') with the fast kernels
   */
  readonly wasm?: boolean;
  /**
   * Loader of the native packages, for tests.
   * @default require
   */
  readonly load?: (id: string) => unknown;
}

/**
 * The candidates to try for a preference, best first. A pure decision: 'tfjs-node' skips the
 * GPU build, 'cpu' skips both.
 */
export function backendCandidates(prefer: BackendName = 'tfjs-node-gpu'): Array<{ name: NativeBackendName; module: string }> {
  if (prefer === 'cpu' || prefer === 'wasm') return [];
  const start = NATIVE_BACKENDS.findIndex((c) => c.name === prefer);
  return NATIVE_BACKENDS.slice(start).map((c) => ({ ...c }));
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0];
}

/** Chooses a backend (see module doc) without caching; use loadTf() in application code. */
export async function chooseTf(options: LoadTfOptions = {}): Promise<LoadedTf> {
  const load = options.load ?? require;
  const skipped: string[] = [];
  for (const candidate of backendCandidates(options.prefer)) {
    try {
      const tf = load(candidate.module) as Tf;
      // Importing a native package registers and selects its 'tensorflow' backend.
      await tf.ready();
      return { tf, backend: candidate.name, kernels: [], skipped };
    } catch (error) {
      skipped.push(`${candidate.module}: ${firstLine(error)}`);
    }
  }
  // A static import, so bundlers include the pure-JS fallback that Lambda runs on.
  const tf = tfjs;
  quietCpuBanner(tf);
  if (options.wasm === true) {
    const fast = await enableFastCpuTraining(tf, { wasm: true });
    return { tf, backend: fast.backend, kernels: fast.kernels, skipped: [...skipped, ...fast.skipped] };
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const { kernels } = enableFastCpuKernels(tf);
  return { tf, backend: 'cpu', kernels, skipped };
}

/**
 * The pure-JS backend prints "install our node backend" on its first write. dlops has already
 * tried the native backends and logs its choice and the reasons, so the banner only misleads.
 */
function quietCpuBanner(tf: Tf): void {
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu !== null && cpu.firstUse === true) cpu.firstUse = false;
}

let loaded: Promise<LoadedTf> | undefined;

/**
 * The process-wide TF.js, chosen on first call and logged once; later calls (Export,
 * Evaluate in the same warm Lambda) reuse it. The options are read only on the first call.
 */
export function loadTf(options: LoadTfOptions = {}): Promise<LoadedTf> {
  loaded ??= chooseTf(options).then((result) => {
    logger.info('TF.js backend chosen', { backend: result.backend, kernels: result.kernels, skipped: result.skipped });
    return result;
  });
  return loaded;
}
