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
 * Max pooling that also returns, per output element, the flat input index of the first strictly greatest value
 * in its window (row-major window order), or -1 when there is none: the tie rule of the stock maxPoolPositions,
 * which matters after a ReLU where whole windows are 0.
 *
 * The running max is updated without branches (best += g * (v - best), g = v > best as 0/1) because window
 * maxima of activations are unpredictable and branch misses dominated. Every case that arithmetic gets wrong
 * (NaN, infinities) shows up as NaN or -Infinity in `best`; those windows are redone exactly by exactWindow.
 */
function maxPoolArgmax(x: Float32Array, pi: Pool2DInfo, out: Float32Array, arg: Int32Array): void {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = pi;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = pi;
  const top = pi.padInfo.top;
  const left = pi.padInfo.left;
  const best = new Float64Array(C);
  const idx = new Float64Array(C);
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
        if (yMin >= yMax || xMin >= xMax) {
          out.fill(Number.NEGATIVE_INFINITY, o, o + C);
          arg.fill(-1, o, o + C);
          o += C;
          continue;
        }
        if (yMax - yMin === 2 && xMax - xMin === 2) {
          // 2x2 windows (the usual poolSize 2): four values per channel, kept in registers.
          const p0 = xb + (yMin * W + xMin) * C;
          const p1 = p0 + C;
          const p2 = p0 + W * C;
          const p3 = p2 + C;
          for (let c = 0; c < C; c++) {
            let m = x[p0 + c];
            let at = p0 + c;
            const v1 = x[p1 + c];
            let g = +(v1 > m);
            m += g * (v1 - m);
            at += g * (p1 + c - at);
            const v2 = x[p2 + c];
            g = +(v2 > m);
            m += g * (v2 - m);
            at += g * (p2 + c - at);
            const v3 = x[p3 + c];
            g = +(v3 > m);
            m += g * (v3 - m);
            at += g * (p3 + c - at);
            if (m !== m || m === Number.NEGATIVE_INFINITY) {
              exactWindow(x, xb, W, C, c, yMin, yMax, xMin, xMax, out, arg, o + c);
            } else {
              out[o + c] = m;
              arg[o + c] = at;
            }
          }
          o += C;
          continue;
        }
        const first = xb + (yMin * W + xMin) * C;
        for (let c = 0; c < C; c++) {
          best[c] = x[first + c];
          idx[c] = first + c;
        }
        for (let iy = yMin; iy < yMax; iy++) {
          for (let ix = iy === yMin ? xMin + 1 : xMin; ix < xMax; ix++) {
            const base = xb + (iy * W + ix) * C;
            for (let c = 0; c < C; c++) {
              const v = x[base + c];
              const m = best[c];
              const g = +(v > m);
              best[c] = m + g * (v - m);
              idx[c] += g * (base + c - idx[c]);
            }
          }
        }
        for (let c = 0; c < C; c++) {
          const m = best[c];
          if (m !== m || m === Number.NEGATIVE_INFINITY) {
            exactWindow(x, xb, W, C, c, yMin, yMax, xMin, xMax, out, arg, o + c);
          } else {
            out[o + c] = m;
            arg[o + c] = idx[c];
          }
        }
        o += C;
      }
    }
  }
}

function exactWindow(
  x: Float32Array, xb: number, W: number, C: number, c: number,
  yMin: number, yMax: number, xMin: number, xMax: number, out: Float32Array, arg: Int32Array, o: number,
): void {
  let m = Number.NEGATIVE_INFINITY;
  let at = -1;
  for (let iy = yMin; iy < yMax; iy++) {
    for (let ix = xMin; ix < xMax; ix++) {
      const j = xb + (iy * W + ix) * C + c;
      if (x[j] > m) {
        m = x[j];
        at = j;
      }
    }
  }
  out[o] = m;
  arg[o] = at;
}

/*
 * MaxPool's forward pass already finds the argmax that MaxPoolGrad needs. It is kept, keyed weakly by the input
 * tensor's dataId (tensor data is immutable; the entry dies with the data), and reused when MaxPoolGrad gets the
 * same input data, the same output data and the same pooling parameters.
 */
const argmaxCache = new WeakMap<object, { key: string; outId: object; arg: Int32Array }>();

function poolKey(args: KernelArgs, shape: readonly number[]): string {
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs;
  return JSON.stringify([shape, filterSize, strides, pad, dimRoundingMode ?? null]);
}

export const maxPool: FastKernel = (args, tf) => {
  const { x } = args.inputs as { x: TensorInfo };
  const xv = f32(args.backend, x);
  if (xv === null || x.shape.length !== 4) return null;
  const pi = poolInfo(tf, args, x.shape as Shape4);
  if (pi.filterWidth === 1 && pi.filterHeight === 1 && x.shape.every((d, i) => d === pi.outShape[i])) return null;
  const out = new Float32Array(sizeOf(pi.outShape));
  const arg = new Int32Array(out.length);
  maxPoolArgmax(xv, pi, out, arg);
  const result = args.backend.makeTensorInfo(pi.outShape, 'float32', out);
  argmaxCache.set(x.dataId, { key: poolKey(args, x.shape), outId: result.dataId, arg });
  return result;
};

/**
 * Non-overlapping 2x2 windows (poolSize 2, stride 2, the usual case), no cached argmax: one pass that finds each
 * window's argmax without branches and writes all four dx values of the window, so dx needs no zero-fill and
 * no scatter. Windows with NaN/infinite values or a non-finite dy are redone exactly. Positions no window covers
 * ('valid' with odd sizes) are zeroed.
 */
function maxPoolGrad2x2(x: Float32Array, dy: Float32Array, dx: Float32Array, pi: Pool2DInfo): void {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = pi;
  if (2 * OH !== H || 2 * OW !== W) dx.fill(0);
  let o = 0;
  for (let b = 0; b < B; b++) {
    const xb = b * H * W * C;
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        const p0 = xb + (2 * oy * W + 2 * ox) * C;
        const p1 = p0 + C;
        const p2 = p0 + W * C;
        const p3 = p2 + C;
        for (let c = 0; c < C; c++) {
          const v0 = x[p0 + c], v1 = x[p1 + c], v2 = x[p2 + c], v3 = x[p3 + c];
          let m = v0;
          let at = 0;
          let g = +(v1 > m);
          m += g * (v1 - m);
          at += g * (1 - at);
          g = +(v2 > m);
          m += g * (v2 - m);
          at += g * (2 - at);
          g = +(v3 > m);
          m += g * (v3 - m);
          at += g * (3 - at);
          const d = dy[o + c];
          if (m !== m || m === Number.NEGATIVE_INFINITY || d - d !== 0) {
            dx[p0 + c] = 0; dx[p1 + c] = 0; dx[p2 + c] = 0; dx[p3 + c] = 0;
            let best = Number.NEGATIVE_INFINITY;
            let j = -1;
            for (const q of [p0 + c, p1 + c, p2 + c, p3 + c]) {
              if (x[q] > best) {
                best = x[q];
                j = q;
              }
            }
            if (j >= 0) dx[j] = d;
          } else {
            dx[p0 + c] = d * +(at === 0);
            dx[p1 + c] = d * +(at === 1);
            dx[p2 + c] = d * +(at === 2);
            dx[p3 + c] = d * +(at === 3);
          }
        }
        o += C;
      }
    }
  }
}

export const maxPoolGrad: FastKernel = (args, tf) => {
  const { dy, input, output } = args.inputs as { dy: TensorInfo; input: TensorInfo; output?: TensorInfo };
  if (input.dtype !== 'float32' || dy.dtype !== 'float32' || input.shape.length !== 4) return null;
  const pi = poolInfo(tf, args, input.shape as Shape4);
  if (sizeOf(pi.outShape) !== sizeOf(dy.shape)) return null;
  const cached = argmaxCache.get(input.dataId);
  const useCache = cached !== undefined && cached.key === poolKey(args, input.shape) && output !== undefined && output.dataId === cached.outId;
  const direct = !useCache && pi.filterHeight === 2 && pi.filterWidth === 2 && pi.strideHeight === 2 && pi.strideWidth === 2 &&
    pi.padInfo.top === 0 && pi.padInfo.left === 0 && 2 * pi.outHeight <= pi.inHeight && 2 * pi.outWidth <= pi.inWidth;
  // Output first: on the wasm heap, allocating can detach input views taken earlier.
  const out = args.backend.allocFloat32?.(input.shape.slice());
  const xv = f32(args.backend, input);
  const dyv = f32(args.backend, dy);
  if (xv === null || dyv === null) return null;
  const dx = out?.values ?? new Float32Array(xv.length);
  if (direct) {
    maxPoolGrad2x2(xv, dyv, dx, pi);
  } else {
    let arg: Int32Array;
    if (useCache) {
      arg = cached.arg;
    } else {
      arg = new Int32Array(dyv.length);
      maxPoolArgmax(xv, pi, new Float32Array(arg.length), arg);
    }
    if (out !== undefined) dx.fill(0);
    for (let i = 0; i < arg.length; i++) {
      const j = arg[i];
      if (j >= 0) dx[j] += dyv[i];
    }
  }
  return out?.info ?? args.backend.makeTensorInfo(input.shape, 'float32', dx);
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
