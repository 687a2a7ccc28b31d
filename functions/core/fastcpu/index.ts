import type * as tfTypes from '@tensorflow/tfjs';

/**
 * Registers dlops's fast CPU kernels on the pure-JavaScript backend and returns their names.
 * Built in the fast-CPU-training issue; until then it registers nothing.
 */
export function enableFastCpuKernels(_tf: typeof tfTypes): { kernels: string[] } {
  return { kernels: [] };
}
