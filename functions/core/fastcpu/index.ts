import type * as tfTypes from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs';
import { withFallback, type FastKernel, type Tf } from './backend';
import { conv2d, conv2dBackpropFilter, conv2dBackpropInput, fusedConv2d } from './conv';
import { add, multiply, relu, step, sub, sum } from './elementwise';
import { fusedMatMul, matMul } from './matmul';
import { avgPoolGrad, maxPool, maxPoolGrad } from './pool';
import { registerWasmKernels } from './wasm';

const BACKEND = 'cpu';
const WASM = 'wasm';

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

/**
 * What the 'wasm' backend lacks or runs slowly; everything else there is XNNPACK/SIMD and faster than ours.
 * On 'wasm' each name first tries its XNNPACK formulation in wasm.ts (filter gradient and transposed matmuls as
 * plain XNNPACK products, Identity without a copy), then the JavaScript kernel here, then the stock kernel.
 */
const WASM_KERNELS: ReadonlyArray<readonly [string, FastKernel]> = [
  ['Conv2DBackpropFilter', conv2dBackpropFilter],
  ['Conv2DBackpropInput', conv2dBackpropInput],
  ['MaxPoolGrad', maxPoolGrad],
  ['BatchMatMul', matMul],
  ['Sum', sum],
  ['Identity', () => null],
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
  registerWasmKernels(tf as Tf, WASM_KERNELS, (name) => stockCpuKernel(tf, name));
  return { kernels: names };
}

export type FastCpuBackend = 'wasm' | 'cpu';

/**
 * The fastest training setup without libtensorflow: the WebAssembly backend with dlops's gradient kernels
 * (about 3x the fast pure-JS kernels on the seed network, bench/train-throughput.ts), else the 'cpu' backend with the fast kernels.
 * Selects the backend (tf.setBackend) and returns its name and the dlops kernels registered.
 * @param options.wasm false skips the WebAssembly backend. @default true
 */
export async function enableFastCpuTraining(
  tf: typeof tfTypes,
  options: { readonly wasm?: boolean } = {},
): Promise<{ backend: FastCpuBackend; kernels: string[]; skipped: string[] }> {
  const skipped: string[] = [];
  if (options.wasm ?? true) {
    try {
      // Loaded on demand: importing it registers the backend; bundles that leave it (and its .wasm files) out still work.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@tensorflow/tfjs-backend-wasm');
      const { kernels } = enableFastCpuKernels(tf);
      if (await tf.setBackend(WASM)) {
        await tf.ready();
        const wasmKernels = WASM_KERNELS.map(([name]) => name).filter((name) => kernels.includes(name) || tf.getKernel(name, WASM) !== undefined);
        return { backend: WASM, kernels: wasmKernels, skipped };
      }
      skipped.push('@tensorflow/tfjs-backend-wasm: setBackend returned false');
    } catch (error) {
      skipped.push(`@tensorflow/tfjs-backend-wasm: ${(error instanceof Error ? error.message : String(error)).split('\n')[0]}`);
    }
  }
  await tf.setBackend(BACKEND);
  await tf.ready();
  return { backend: BACKEND, kernels: enableFastCpuKernels(tf).kernels, skipped };
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
