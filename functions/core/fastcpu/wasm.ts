import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import type { CpuBackend, FastKernel, KernelArgs, Tf } from './backend';

/**
 * The WebAssembly backend (@tensorflow/tfjs-backend-wasm: XNNPACK, SIMD) runs the forward ops and most gradients
 * several times faster than pure JavaScript, but cannot train a CNN: it has no Conv2DBackpropFilter, and its
 * MaxPoolGrad is a naive loop. dlops registers its JavaScript kernels for those on 'wasm', reading and writing
 * the wasm heap directly, and bridges every other kernel 'wasm' lacks to the stock 'cpu' kernel (copying the
 * tensors across), so no training graph fails for want of a kernel.
 */
const WASM = 'wasm';

/** The members of tfjs-backend-wasm's BackendWasm used here. */
interface WasmBackend {
  dataIdMap: { get(dataId: object): { shape: number[]; dtype: string } | undefined };
  typedArrayFromHeap(t: { shape: number[]; dtype: string; dataId: object }): ArrayBufferView;
  makeOutput(shape: number[], dtype: string, memoryOffset?: number, values?: unknown): TensorInfo;
  readSync(dataId: object): unknown;
}

interface CpuBackendFull extends CpuBackend {
  write(values: unknown, shape: number[], dtype: string): object;
  readSync(dataId: object): unknown;
  disposeData(dataId: object, force?: boolean): boolean;
}

/**
 * Presents the wasm heap through the interface the fast kernels use. Input views are taken before the output
 * is allocated and not used after: growing the heap detaches earlier views.
 */
function heapFacade(wasm: WasmBackend): CpuBackend {
  return {
    data: {
      get(dataId: object) {
        const d = wasm.dataIdMap.get(dataId);
        return { values: d === undefined ? undefined : wasm.typedArrayFromHeap({ dataId, shape: d.shape, dtype: d.dtype }) };
      },
    },
    makeTensorInfo(shape: number[], dtype: string, values?: unknown): TensorInfo {
      return wasm.makeOutput(shape, dtype, undefined, values);
    },
  };
}

/** Runs a stock 'cpu' kernel on copies of wasm tensors and copies its outputs back into the wasm heap. */
function bridgeToCpu(tf: Tf, cpuKernel: KernelFunc): KernelFunc {
  return (params) => {
    const wasm = params.backend as WasmBackend;
    const cpu = tf.engine().findBackend('cpu') as unknown as CpuBackendFull | null;
    if (cpu === null) throw new Error(`the 'cpu' backend is not available to run a kernel the 'wasm' backend lacks`);
    const created: object[] = [];
    const inputs: NamedTensorInfoMap = {};
    for (const [name, t] of Object.entries(params.inputs)) {
      if (t == null) continue;
      const dataId = cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype);
      created.push(dataId);
      inputs[name] = { dataId, shape: t.shape, dtype: t.dtype };
    }
    try {
      const out = cpuKernel({ inputs, backend: cpu, attrs: params.attrs });
      const outs = Array.isArray(out) ? out : [out];
      const moved = outs.map((o) => {
        const r = wasm.makeOutput(o.shape, o.dtype, undefined, cpu.readSync(o.dataId));
        cpu.disposeData(o.dataId, true);
        return r;
      });
      return Array.isArray(out) ? moved : moved[0];
    } finally {
      for (const id of created) cpu.disposeData(id, true);
    }
  };
}

const ours = new WeakSet<KernelFunc>();

/**
 * Registers the fast kernels (`fast`, name -> kernel) and the cpu bridges on the 'wasm' backend, if that
 * backend is registered (the @tensorflow/tfjs-backend-wasm package was imported). Idempotent.
 */
export function registerWasmKernels(tf: Tf, fast: ReadonlyArray<readonly [string, FastKernel]>, stockCpu: (name: string) => KernelFunc | undefined): string[] {
  if (tf.findBackendFactory(WASM) == null) return [];
  const names: string[] = [];
  for (const [name, kernel] of fast) {
    const current = tf.getKernel(name, WASM);
    if (current !== undefined && ours.has(current.kernelFunc)) {
      names.push(name);
      continue;
    }
    const fallback = current?.kernelFunc ?? (stockCpu(name) !== undefined ? bridgeToCpu(tf, stockCpu(name) as KernelFunc) : undefined);
    if (fallback === undefined) continue;
    const kernelFunc: KernelFunc = (params) => {
      const args: KernelArgs = { inputs: params.inputs, backend: heapFacade(params.backend as WasmBackend), attrs: params.attrs ?? {} };
      return kernel(args, tf) ?? fallback(params);
    };
    ours.add(kernelFunc);
    if (current !== undefined) tf.unregisterKernel(name, WASM);
    tf.registerKernel({ ...(current ?? {}), kernelName: name, backendName: WASM, kernelFunc } as KernelConfig);
    names.push(name);
  }
  const have = new Set(tf.getKernelsForBackend(WASM).map((k) => k.kernelName));
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (have.has(k.kernelName)) continue;
    const stock = stockCpu(k.kernelName) ?? k.kernelFunc;
    const kernelFunc = bridgeToCpu(tf, stock);
    ours.add(kernelFunc);
    tf.registerKernel({ kernelName: k.kernelName, backendName: WASM, kernelFunc });
  }
  return names;
}
