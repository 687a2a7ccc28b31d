import type * as tfTypes from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs';
import { withFallback, type FastKernel, type Tf } from './backend';
import { conv2d, conv2dBackpropFilter, conv2dBackpropInput, fusedConv2d } from './conv';
import { add, multiply, relu, step, sub, sum } from './elementwise';
import { fusedMatMul, matMul } from './matmul';
import { avgPoolGrad, maxPool, maxPoolGrad } from './pool';

const BACKEND = 'cpu';

/** Kernel name -> fast implementation. Each falls back to the stock kernel for cases it does not cover. */
const FAST_KERNELS: ReadonlyArray<readonly [string, FastKernel]> = [
  ['Conv2D', conv2d],
  ['FusedConv2D', fusedConv2d],
  ['Conv2DBackpropFilter', conv2dBackpropFilter],
  ['Conv2DBackpropInput', conv2dBackpropInput],
  ['MaxPool', maxPool],
  ['MaxPoolGrad', maxPoolGrad],
  ['AvgPoolGrad', avgPoolGrad],
  ['BatchMatMul', matMul],
  ['_FusedMatMul', fusedMatMul],
  ['Add', add],
  ['Sub', sub],
  ['Multiply', multiply],
  ['Relu', relu],
  ['Step', step],
  ['Sum', sum],
];

/** The stock configs we replaced, so they can be restored and so a second enable does not wrap our own kernels. */
const stockConfigs = new Map<string, KernelConfig>();
const ours = new WeakSet<KernelFunc>();

/**
 * Registers dlops's fast CPU kernels on the pure-JavaScript backend ('cpu') and returns their names.
 * Idempotent: kernels already replaced are left alone. Safe to call before or after tf.setBackend('cpu').
 */
export function enableFastCpuKernels(tf: typeof tfTypes): { kernels: string[] } {
  const names: string[] = [];
  for (const [name, fast] of FAST_KERNELS) {
    const current = tf.getKernel(name, BACKEND);
    if (current === undefined) continue;
    if (ours.has(current.kernelFunc)) {
      names.push(name);
      continue;
    }
    const kernelFunc = withFallback(tf as Tf, fast, current.kernelFunc);
    ours.add(kernelFunc);
    stockConfigs.set(name, { ...current });
    tf.unregisterKernel(name, BACKEND);
    tf.registerKernel({ ...current, kernelFunc });
    names.push(name);
  }
  return { kernels: names };
}

/** Puts the stock kernels back (tests and the benchmark compare against them). Returns the names restored. */
export function disableFastCpuKernels(tf: typeof tfTypes): { kernels: string[] } {
  const names: string[] = [];
  for (const [name] of FAST_KERNELS) {
    const stock = stockConfigs.get(name);
    const current = tf.getKernel(name, BACKEND);
    if (stock === undefined || current === undefined || !ours.has(current.kernelFunc)) continue;
    tf.unregisterKernel(name, BACKEND);
    tf.registerKernel(stock);
    stockConfigs.delete(name);
    names.push(name);
  }
  return { kernels: names };
}

/** The stock kernel function behind a fast one, for side-by-side numerics tests. */
export function stockCpuKernel(tf: typeof tfTypes, name: string): KernelFunc | undefined {
  return stockConfigs.get(name)?.kernelFunc ?? tf.getKernel(name, BACKEND)?.kernelFunc;
}
