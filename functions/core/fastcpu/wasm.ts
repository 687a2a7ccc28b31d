import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import type { CpuBackend, FastKernel, KernelArgs, Tf } from './backend';
import { im2col } from './conv';

/**
 * The WebAssembly backend (@tensorflow/tfjs-backend-wasm: XNNPACK, SIMD) runs the forward ops and most gradients
 * several times faster than pure JavaScript, but cannot train a CNN: it has no Conv2DBackpropFilter, and its
 * MaxPoolGrad, Conv2DBackpropInput and transposed matmuls are naive loops. dlops recasts the filter gradient, the
 * stride-1 input gradient and the transposed matmuls as plain XNNPACK products/convolutions, runs its JavaScript
 * kernels on the wasm heap for the rest (MaxPoolGrad, Sum, other strides), and bridges every kernel 'wasm' lacks
 * to the stock 'cpu' kernel (copying the tensors across), so no training graph fails for want of a kernel.
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
    allocFloat32(shape: number[]) {
      const info = wasm.makeOutput(shape, 'float32');
      return { info, values: wasm.typedArrayFromHeap(info) as Float32Array };
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

type WasmFull = WasmBackend & { disposeData(dataId: object): boolean };

/** Stock 'wasm' kernel functions, saved before dlops replaces any of them. */
const wasmStock = new Map<string, KernelFunc>();

function runKernel(f: KernelFunc, backend: WasmFull, inputs: NamedTensorInfoMap, attrs: object): TensorInfo {
  return f({ inputs, backend, attrs: attrs as never }) as TensorInfo;
}

function transposeLastTwo(tf: Tf, backend: WasmFull, t: TensorInfo): TensorInfo {
  const transpose = wasmStock.get('Transpose') ?? tf.getKernel('Transpose', WASM)?.kernelFunc;
  if (transpose === undefined) throw new Error(`the 'wasm' backend has no Transpose kernel`);
  const r = t.shape.length;
  const perm = [...Array(r - 2).keys(), r - 1, r - 2];
  return runKernel(transpose, backend, { x: t }, { perm });
}

/**
 * XNNPACK multiplies fast only when neither operand is transposed (about 10 GMAC/s here, against 1 GMAC/s for
 * its transposed path). Gradients of dense layers are transposed products, so the transposed operand is
 * materialised first: an O(n) copy in front of an O(n*k) product.
 */
function batchMatMulXnn(tf: Tf, params: Parameters<KernelFunc>[0]): TensorInfo | null {
  const { a, b } = params.inputs as { a: TensorInfo; b: TensorInfo };
  const attrs = params.attrs ?? {};
  const transposeA = attrs.transposeA === true;
  const transposeB = attrs.transposeB === true;
  const bmm = wasmStock.get('BatchMatMul');
  if (bmm === undefined || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  if (!transposeA && !transposeB) return bmm(params) as TensorInfo;
  const backend = params.backend as WasmFull;
  const a2 = transposeA ? transposeLastTwo(tf, backend, a) : a;
  const b2 = transposeB ? transposeLastTwo(tf, backend, b) : b;
  try {
    return runKernel(bmm, backend, { a: a2, b: b2 }, { transposeA: false, transposeB: false });
  } finally {
    if (a2 !== a) backend.disposeData(a2.dataId);
    if (b2 !== b) backend.disposeData(b2.dataId);
  }
}

/** Largest patch matrix (floats) built for the XNNPACK filter gradient; beyond it the JavaScript kernel runs. */
const MAX_PATCH_FLOATS = 32 * 1024 * 1024;

/**
 * Conv2DBackpropFilter as one XNNPACK product: dW^T[Co, K] = dy^T[Co, B*OH*OW] · P[B*OH*OW, K], where P is the
 * patch matrix (K = kh*kw*Ci), written straight into the wasm heap. Sums run in float32 SIMD lanes
 * like every XNNPACK product. NCHW or an oversized patch matrix returns null (the JavaScript kernel runs).
 */
export function conv2dBackpropFilterXnn(tf: Tf, params: Parameters<KernelFunc>[0]): TensorInfo | null {
  const { x, dy } = params.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = params.attrs ?? {};
  const dataFormat = attrs.dataFormat as string | undefined;
  const bmm = wasmStock.get('BatchMatMul');
  if ((dataFormat !== undefined && dataFormat !== 'NHWC') || x.dtype !== 'float32' || dy.dtype !== 'float32' || bmm === undefined) return null;
  const filterShape = attrs.filterShape as [number, number, number, number];
  const ci = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape,
    attrs.strides as [number, number], 1, attrs.pad as 'same' | 'valid', attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
  const { batchSize: B, inChannels: C, outHeight: OH, outWidth: OW, outChannels: Co, filterHeight: fh, filterWidth: fw } = ci;
  const npix = B * OH * OW;
  const K = fh * fw * C;
  if (K * npix > MAX_PATCH_FLOATS || npix === 0) return null;
  const backend = params.backend as WasmFull;
  const transpose = wasmStock.get('Transpose');
  if (transpose === undefined) return null;
  // dy^T first, so that the big operand is XNNPACK's streamed input and only the patch matrix gets packed
  // as weights (packing is a copy of the whole operand on every call: these "weights" change every step).
  const dyT = runKernel(transpose, backend, { x: { dataId: dy.dataId, shape: [npix, Co], dtype: 'float32' } }, { perm: [1, 0] });
  const patches = backend.makeOutput([npix, K], 'float32');
  // Views after the allocation: it may grow the heap, which detaches views taken before.
  const P = backend.typedArrayFromHeap(patches) as Float32Array;
  const xv = backend.typedArrayFromHeap({ dataId: x.dataId, shape: x.shape, dtype: 'float32' }) as Float32Array;
  const perImage = OH * OW * K;
  for (let b = 0; b < B; b++) im2col(xv, b, ci, P.subarray(b * perImage, (b + 1) * perImage));
  let prod: TensorInfo | undefined;
  try {
    prod = runKernel(bmm, backend, { a: { ...dyT, shape: [1, Co, npix] }, b: { ...patches, shape: [1, npix, K] } },
      { transposeA: false, transposeB: false });
    const dW = runKernel(transpose, backend, { x: { ...prod, shape: [Co, K] } }, { perm: [1, 0] });
    return { dataId: dW.dataId, shape: filterShape, dtype: 'float32' };
  } finally {
    backend.disposeData(dyT.dataId);
    backend.disposeData(patches.dataId);
    if (prod !== undefined) backend.disposeData(prod.dataId);
  }
}

/**
 * Conv2DBackpropInput for stride 1 as one XNNPACK convolution: dx is dy, padded by (filter - 1 - pad) on each
 * side, correlated with the filter rotated by 180 degrees and its in/out channels swapped (W'[ky,kx,co,ci] =
 * W[kh-1-ky, kw-1-kx, ci, co]). Other strides and layouts return null (the JavaScript kernel runs).
 */
export function conv2dBackpropInputXnn(tf: Tf, params: Parameters<KernelFunc>[0]): TensorInfo | null {
  const { dy, filter } = params.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = params.attrs ?? {};
  const dataFormat = attrs.dataFormat as string | undefined;
  const conv = wasmStock.get('Conv2D');
  if ((dataFormat !== undefined && dataFormat !== 'NHWC') || dy.dtype !== 'float32' || filter.dtype !== 'float32' || conv === undefined) return null;
  const inputShape = attrs.inputShape as [number, number, number, number];
  const [fh, fw, cin, cout] = filter.shape;
  const ci = tf.backend_util.computeConv2DInfo(inputShape, [fh, fw, cin, cout],
    attrs.strides as [number, number], 1, attrs.pad as 'same' | 'valid', attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
  const { top, bottom, left, right } = ci.padInfo;
  if (ci.strideHeight !== 1 || ci.strideWidth !== 1 || top > fh - 1 || bottom > fh - 1 || left > fw - 1 || right > fw - 1) return null;
  const backend = params.backend as WasmFull;
  const rotated = backend.makeOutput([fh, fw, cout, cin], 'float32');
  const R = backend.typedArrayFromHeap(rotated) as Float32Array;
  const Wv = backend.typedArrayFromHeap({ dataId: filter.dataId, shape: filter.shape, dtype: 'float32' }) as Float32Array;
  for (let ky = 0; ky < fh; ky++) {
    for (let kx = 0; kx < fw; kx++) {
      const src = ((fh - 1 - ky) * fw + (fw - 1 - kx)) * cin * cout;
      const dst = (ky * fw + kx) * cout * cin;
      for (let i = 0; i < cin; i++) for (let o = 0; o < cout; o++) R[dst + o * cin + i] = Wv[src + i * cout + o];
    }
  }
  try {
    const dx = runKernel(conv, backend, { x: dy, filter: rotated }, {
      strides: [1, 1], pad: [[0, 0], [fh - 1 - top, fh - 1 - bottom], [fw - 1 - left, fw - 1 - right], [0, 0]],
      dataFormat: 'NHWC', dilations: [1, 1],
    });
    if (dx.shape.some((d, i) => d !== inputShape[i])) {
      backend.disposeData(dx.dataId);
      return null;
    }
    return dx;
  } finally {
    backend.disposeData(rotated.dataId);
  }
}

/**
 * Identity shares the input's data (reference count up) as the 'cpu' backend and the wasm Reshape do, instead
 * of copying it: training runs Identity on every gradient and variable each step.
 */
function identityShared(_tf: Tf, params: Parameters<KernelFunc>[0]): TensorInfo | null {
  const { x } = params.inputs as { x: TensorInfo };
  if (x.dtype === 'string') return null;
  (params.backend as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/*
 * MaxPoolGrad stays in JavaScript: the wasm MaxPoolWithArgmax kernel would give the argmax for free, but it
 * breaks ties differently from the stock kernels (measured: tens of mismatches on ReLU outputs of a few hundred
 * elements), and after a ReLU ties are the rule.
 */

/** Kernels that run as XNNPACK work on the wasm heap (or need no work); null falls through to the next kernel. */
const XNN_KERNELS: Record<string, (tf: Tf, params: Parameters<KernelFunc>[0]) => TensorInfo | null> = {
  Conv2DBackpropFilter: conv2dBackpropFilterXnn,
  Conv2DBackpropInput: conv2dBackpropInputXnn,
  BatchMatMul: batchMatMulXnn,
  Identity: identityShared,
};

/**
 * Registers the fast kernels (`fast`, name -> kernel) and the cpu bridges on the 'wasm' backend, if that
 * backend is registered (the @tensorflow/tfjs-backend-wasm package was imported). Idempotent.
 */
export function registerWasmKernels(tf: Tf, fast: ReadonlyArray<readonly [string, FastKernel]>, stockCpu: (name: string) => KernelFunc | undefined): string[] {
  if (tf.findBackendFactory(WASM) == null) return [];
  const names: string[] = [];
  for (const k of tf.getKernelsForBackend(WASM)) if (!ours.has(k.kernelFunc) && !wasmStock.has(k.kernelName)) wasmStock.set(k.kernelName, k.kernelFunc);
  for (const [name, kernel] of fast) {
    const current = tf.getKernel(name, WASM);
    if (current !== undefined && ours.has(current.kernelFunc)) {
      names.push(name);
      continue;
    }
    const fallback = current?.kernelFunc ?? (stockCpu(name) !== undefined ? bridgeToCpu(tf, stockCpu(name) as KernelFunc) : undefined);
    if (fallback === undefined) continue;
    const kernelFunc: KernelFunc = (params) => {
      const xnn = XNN_KERNELS[name]?.(tf, params);
      if (xnn != null) return xnn;
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
