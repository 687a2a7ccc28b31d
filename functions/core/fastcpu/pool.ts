import type { TensorInfo } from '@tensorflow/tfjs';
import { f32, sizeOf, type FastKernel, type KernelArgs, type Tf } from './backend';

type Pool2DInfo = ReturnType<Tf['backend_util']['computePool2DInfo']>;
type Shape4 = [number, number, number, number];

/**
 * 2-D pooling over NHWC with channels innermost: each window position is a contiguous channel row, so the
 * loops stream memory instead of striding by C for every element as the stock kernels do.
 */
function poolInfo(tf: Tf, args: KernelArgs, xShape: Shape4): Pool2DInfo {
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as {
    filterSize: [number, number] | number; strides: [number, number] | number;
    pad: Parameters<Tf['backend_util']['computePool2DInfo']>[4]; dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  return tf.backend_util.computePool2DInfo(xShape, filterSize, strides, 1, pad, dimRoundingMode);
}

/**
 * For each output element, the flat input index of the first strictly greatest value in its window (row-major
 * window order), or -1 when there is none (all NaN): the same tie rule as the stock maxPoolPositions, which
 * matters after a ReLU where whole windows are 0.
 */
function maxPoolArgmax(x: Float32Array, pi: Pool2DInfo, out: Float32Array | null, arg: Int32Array | null): void {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = pi;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = pi;
  const top = pi.padInfo.top;
  const left = pi.padInfo.left;
  const best = new Float64Array(C);
  const bestIdx = new Int32Array(C);
  let o = 0;
  for (let b = 0; b < B; b++) {
    const xb = b * H * W * C;
    for (let oy = 0; oy < OH; oy++) {
      const y0 = oy * sh - top;
      const yMin = Math.max(0, y0);
      const yMax = Math.min(H, y0 + fh);
      for (let ox = 0; ox < OW; ox++) {
        const x0 = ox * sw - left;
        const xMin = Math.max(0, x0);
        const xMax = Math.min(W, x0 + fw);
        best.fill(Number.NEGATIVE_INFINITY);
        bestIdx.fill(-1);
        for (let iy = yMin; iy < yMax; iy++) {
          for (let ix = xMin; ix < xMax; ix++) {
            const base = xb + (iy * W + ix) * C;
            for (let c = 0; c < C; c++) {
              const v = x[base + c];
              if (v > best[c]) {
                best[c] = v;
                bestIdx[c] = base + c;
              }
            }
          }
        }
        if (out !== null) for (let c = 0; c < C; c++) out[o + c] = best[c];
        if (arg !== null) arg.set(bestIdx, o);
        o += C;
      }
    }
  }
}

export const maxPool: FastKernel = (args, tf) => {
  const { x } = args.inputs as { x: TensorInfo };
  const xv = f32(args.backend, x);
  if (xv === null || x.shape.length !== 4) return null;
  const pi = poolInfo(tf, args, x.shape as Shape4);
  if (pi.filterWidth === 1 && pi.filterHeight === 1 && x.shape.every((d, i) => d === pi.outShape[i])) return null;
  const out = new Float32Array(sizeOf(pi.outShape));
  maxPoolArgmax(xv, pi, out, null);
  return args.backend.makeTensorInfo(pi.outShape, 'float32', out);
};

export const maxPoolGrad: FastKernel = (args, tf) => {
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  const xv = f32(args.backend, input);
  const dyv = f32(args.backend, dy);
  if (xv === null || dyv === null || input.shape.length !== 4) return null;
  const pi = poolInfo(tf, args, input.shape as Shape4);
  const arg = new Int32Array(sizeOf(pi.outShape));
  maxPoolArgmax(xv, pi, null, arg);
  const dx = new Float32Array(xv.length);
  for (let i = 0; i < arg.length; i++) {
    const j = arg[i];
    if (j >= 0) dx[j] += dyv[i];
  }
  return args.backend.makeTensorInfo(input.shape, 'float32', dx);
};

/** Stock AvgPoolGrad divides by the full window size even where 'same' padding cut the window: kept as is. */
export const avgPoolGrad: FastKernel = (args, tf) => {
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  const dyv = f32(args.backend, dy);
  if (dyv === null || input.shape.length !== 4) return null;
  const pi = poolInfo(tf, args, input.shape as Shape4);
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = pi;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = pi;
  const top = pi.padInfo.top;
  const left = pi.padInfo.left;
  const scale = 1 / (fh * fw);
  const dx = new Float64Array(B * H * W * C);
  let o = 0;
  for (let b = 0; b < B; b++) {
    const xb = b * H * W * C;
    for (let oy = 0; oy < OH; oy++) {
      const y0 = oy * sh - top;
      const yMin = Math.max(0, y0);
      const yMax = Math.min(H, y0 + fh);
      for (let ox = 0; ox < OW; ox++) {
        const x0 = ox * sw - left;
        const xMin = Math.max(0, x0);
        const xMax = Math.min(W, x0 + fw);
        for (let iy = yMin; iy < yMax; iy++) {
          for (let ix = xMin; ix < xMax; ix++) {
            const base = xb + (iy * W + ix) * C;
            for (let c = 0; c < C; c++) dx[base + c] += dyv[o + c];
          }
        }
        o += C;
      }
    }
  }
  const out = new Float32Array(dx.length);
  for (let i = 0; i < dx.length; i++) out[i] = dx[i] * scale;
  return args.backend.makeTensorInfo(input.shape, 'float32', out);
};
