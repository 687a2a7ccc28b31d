import type { TensorInfo } from '@tensorflow/tfjs';
import { f32, sizeOf, type FastKernel, type KernelArgs, type Tf } from './backend';
import { addBiasRows, applyActivationInPlace } from './conv';
import { gemm } from './gemm';

const FUSABLE = new Set(['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu']);

/** Batched A·B with optional transposes; batch dims equal or one side a single matrix. null: leave it to stock. */
function batchMatMul(args: KernelArgs, tf: Tf): { shape: number[]; values: Float32Array; n: number } | null {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const transposeA = args.attrs.transposeA === true;
  const transposeB = args.attrs.transposeB === true;
  const av = f32(args.backend, a);
  const bv = f32(args.backend, b);
  if (av === null || bv === null || a.shape.length < 2 || b.shape.length < 2) return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const k2 = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== k2) return null;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = sizeOf(outerA);
  const batchB = sizeOf(outerB);
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null;
  }
  const batch = sizeOf(outer);
  if (!((batchA === batch || batchA === 1) && (batchB === batch || batchB === 1))) return null;
  const out = new Float32Array(batch * m * n);
  for (let i = 0; i < batch; i++) {
    gemm(m, n, k,
      { data: av, offset: (batchA === 1 ? 0 : i) * m * k, rowStride: transposeA ? 1 : k, colStride: transposeA ? m : 1 },
      { data: bv, offset: (batchB === 1 ? 0 : i) * k * n, rowStride: transposeB ? 1 : n, colStride: transposeB ? k : 1 },
      out, i * m * n, n, false);
  }
  return { shape: [...outer, m, n], values: out, n };
}

export const matMul: FastKernel = (args, tf) => {
  const r = batchMatMul(args, tf);
  return r === null ? null : args.backend.makeTensorInfo(r.shape, 'float32', r.values);
};

export const fusedMatMul: FastKernel = (args, tf) => {
  const { bias, preluActivationWeights } = args.inputs as { bias?: TensorInfo; preluActivationWeights?: TensorInfo };
  if (preluActivationWeights != null) return null;
  if (!FUSABLE.has((args.attrs.activation as string | undefined) ?? 'linear')) return null;
  let bv: Float32Array | null = null;
  if (bias != null) {
    bv = f32(args.backend, bias);
    if (bv === null || bias.shape.length > 1) return null;
  }
  const r = batchMatMul(args, tf);
  if (r === null) return null;
  if (bv !== null && !addBiasRows(r.values, bv, r.n)) return null;
  applyActivationInPlace(r.values, args.attrs.activation, args.attrs.leakyreluAlpha);
  return args.backend.makeTensorInfo(r.shape, 'float32', r.values);
};
