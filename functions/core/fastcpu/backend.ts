import type * as tfTypes from '@tensorflow/tfjs';
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

export type Tf = typeof tfTypes;

/** The slice of tfjs-backend-cpu's MathBackendCPU the kernels use: its data store and tensor factory. */
export interface CpuBackend {
  readonly data: { get(dataId: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: string, values?: unknown): TensorInfo;
  /**
   * A float32 output the kernel fills in place (no copy): on the wasm heap the array is a view, so it must be
   * allocated before the kernel takes its input views (allocation can grow the heap and detach them), and
   * its contents start undefined.
   */
  allocFloat32?(shape: number[]): { info: TensorInfo; values: Float32Array };
}

export interface KernelArgs {
  readonly inputs: NamedTensorInfoMap;
  readonly backend: CpuBackend;
  readonly attrs: NamedAttrMap;
}

/** A fast kernel returns null when it does not handle a case; the stock kernel then runs unchanged. */
export type FastKernel = (args: KernelArgs, tf: Tf) => TensorInfo | null;

export function withFallback(tf: Tf, fast: FastKernel, stock: KernelFunc): KernelFunc {
  return (params) => {
    const args = params as unknown as KernelArgs;
    const out = fast({ inputs: args.inputs, backend: args.backend, attrs: args.attrs ?? {} }, tf);
    return out ?? stock(params);
  };
}

/** float32 values of a tensor held by the cpu backend, or null when it is another dtype (stock handles those). */
export function f32(backend: CpuBackend, t: TensorInfo | undefined): Float32Array | null {
  if (t === undefined || t.dtype !== 'float32') return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : null;
}

export function sizeOf(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}
