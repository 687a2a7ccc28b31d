import type { TensorInfo } from '@tensorflow/tfjs';
import { f32, type FastKernel, type KernelArgs, type Tf } from './backend';
import { gemm } from './gemm';

type Conv2DInfo = ReturnType<Tf['backend_util']['computeConv2DInfo']>;
type Shape4 = [number, number, number, number];
type Pad = Parameters<Tf['backend_util']['computeConv2DInfo']>[4];
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/**
 * Convolutions as one im2col + GEMM per image. Per image keeps the patch matrix small (pixels x kh*kw*inC)
 * so it stays in cache, and gives the weight gradient a natural K-blocking (one image's pixels at a time).
 * Only NHWC is handled; NCHW falls back to the stock kernel.
 */

/**
 * Fills P[npix, K] (K ordered ky, kx, ci like the filter's [kh, kw, inC, outC]) for image b; 0 outside the input.
 * Written column by column: for one (ky, kx, ci) the valid output columns of a row are a single range, so the
 * inner loop is a branch-free strided copy. Pixel by pixel, small filters spent most time on loop overhead.
 */
export function im2col(x: Float32Array, b: number, ci: Conv2DInfo, P: Float32Array): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = ci;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, filterHeight: fh, filterWidth: fw } = ci;
  const top = ci.padInfo.top;
  const left = ci.padInfo.left;
  const K = fh * fw * C;
  const xBase = b * H * W * C;
  const step = sw * C;
  for (let ky = 0; ky < fh; ky++) {
    for (let kx = 0; kx < fw; kx++) {
      const off = kx * dw - left;
      // Valid ox: 0 <= ox*sw + off < W.
      const oxMin = Math.min(OW, Math.max(0, Math.ceil(-off / sw)));
      const oxMax = Math.max(oxMin, Math.min(OW, Math.floor((W - 1 - off) / sw) + 1));
      for (let c = 0; c < C; c++) {
        const k = (ky * fw + kx) * C + c;
        for (let oy = 0; oy < OH; oy++) {
          const iy = oy * sh - top + ky * dh;
          let p = oy * OW * K + k;
          if (iy < 0 || iy >= H) {
            for (let ox = 0; ox < OW; ox++, p += K) P[p] = 0;
            continue;
          }
          for (let ox = 0; ox < oxMin; ox++, p += K) P[p] = 0;
          let src = xBase + (iy * W + oxMin * sw + off) * C + c;
          for (let ox = oxMin; ox < oxMax; ox++, p += K, src += step) P[p] = x[src];
          for (let ox = oxMax; ox < OW; ox++, p += K) P[p] = 0;
        }
      }
    }
  }
}

/** dx_b += scatter of dP[npix, K] back onto the input positions each patch came from. */
function col2im(dP: Float32Array, ci: Conv2DInfo, dx: Float32Array, b: number): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = ci;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, filterHeight: fh, filterWidth: fw } = ci;
  const top = ci.padInfo.top;
  const left = ci.padInfo.left;
  const xBase = b * H * W * C;
  let p = 0;
  for (let oy = 0; oy < OH; oy++) {
    const iy0 = oy * sh - top;
    for (let ox = 0; ox < OW; ox++) {
      const ix0 = ox * sw - left;
      for (let ky = 0; ky < fh; ky++) {
        const iy = iy0 + ky * dh;
        if (iy < 0 || iy >= H) {
          p += fw * C;
          continue;
        }
        const rowBase = xBase + iy * W * C;
        for (let kx = 0; kx < fw; kx++) {
          const ix = ix0 + kx * dw;
          if (ix >= 0 && ix < W) {
            const o = rowBase + ix * C;
            for (let c = 0; c < C; c++) dx[o + c] += dP[p + c];
          }
          p += C;
        }
      }
    }
  }
}

function isNhwc(dataFormat: unknown): boolean {
  return dataFormat === undefined || dataFormat === 'NHWC';
}

/** Scratch buffers reused across calls: training calls the same shapes every step. */
let scratchA = new Float32Array(0);
let scratchB = new Float32Array(0);
function scratch(which: 'a' | 'b', n: number): Float32Array {
  if (which === 'a') {
    if (scratchA.length < n) scratchA = new Float32Array(n);
    return scratchA;
  }
  if (scratchB.length < n) scratchB = new Float32Array(n);
  return scratchB;
}

/** out[b] = im2col(x[b]) · W for every image. Exported for FusedConv2D. */
export function conv2dForward(x: Float32Array, w: Float32Array, ci: Conv2DInfo, out: Float32Array): void {
  const npix = ci.outHeight * ci.outWidth;
  const K = ci.filterHeight * ci.filterWidth * ci.inChannels;
  const N = ci.outChannels;
  const pointwise = ci.filterHeight === 1 && ci.filterWidth === 1 && ci.strideHeight === 1 && ci.strideWidth === 1 &&
    ci.padInfo.top === 0 && ci.padInfo.left === 0;
  const P = pointwise ? x : scratch('a', npix * K);
  for (let b = 0; b < ci.batchSize; b++) {
    if (!pointwise) im2col(x, b, ci, P);
    const aOff = pointwise ? b * npix * K : 0;
    gemm(npix, N, K, { data: P, offset: aOff, rowStride: K, colStride: 1 },
      { data: w, offset: 0, rowStride: N, colStride: 1 }, out, b * npix * N, N, false);
  }
}

export function conv2dInfo(tf: Tf, args: KernelArgs, xShape: Shape4, filterShape: Shape4, dilations: unknown): Conv2DInfo {
  const { strides, pad, dimRoundingMode } = args.attrs as { strides: [number, number]; pad: Pad; dimRoundingMode: Rounding };
  return tf.backend_util.computeConv2DInfo(xShape, filterShape, strides, (dilations ?? 1) as number | [number, number], pad,
    dimRoundingMode, false, 'channelsLast');
}

export const conv2d: FastKernel = (args, tf) => {
  const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
  if (!isNhwc(args.attrs.dataFormat)) return null;
  const xv = f32(args.backend, x);
  const wv = f32(args.backend, filter);
  if (xv === null || wv === null) return null;
  const ci = conv2dInfo(tf, args, x.shape as Shape4, filter.shape as Shape4, args.attrs.dilations);
  const out = new Float32Array(ci.batchSize * ci.outHeight * ci.outWidth * ci.outChannels);
  conv2dForward(xv, wv, ci, out);
  return args.backend.makeTensorInfo(ci.outShape, 'float32', out);
};

export const conv2dBackpropFilter: FastKernel = (args, tf) => {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  if (!isNhwc(args.attrs.dataFormat)) return null;
  const xv = f32(args.backend, x);
  const dyv = f32(args.backend, dy);
  if (xv === null || dyv === null) return null;
  const filterShape = args.attrs.filterShape as Shape4;
  const ci = conv2dInfo(tf, args, x.shape as Shape4, filterShape, 1);
  const npix = ci.outHeight * ci.outWidth;
  const K = ci.filterHeight * ci.filterWidth * ci.inChannels;
  const N = ci.outChannels;
  const P = scratch('a', npix * K);
  const part = scratch('b', K * N);
  // The sum over images is kept in float64: it runs over the whole batch and float32 partials would drift.
  const acc = new Float64Array(K * N);
  for (let b = 0; b < ci.batchSize; b++) {
    im2col(xv, b, ci, P);
    gemm(K, N, npix, { data: P, offset: 0, rowStride: 1, colStride: K },
      { data: dyv, offset: b * npix * N, rowStride: N, colStride: 1 }, part, 0, N, false);
    for (let i = 0; i < K * N; i++) acc[i] += part[i];
  }
  return args.backend.makeTensorInfo(filterShape, 'float32', Float32Array.from(acc));
};

export const conv2dBackpropInput: FastKernel = (args, tf) => {
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  if (!isNhwc(args.attrs.dataFormat)) return null;
  const dyv = f32(args.backend, dy);
  const wv = f32(args.backend, filter);
  if (dyv === null || wv === null) return null;
  const inputShape = args.attrs.inputShape as Shape4;
  const ci = conv2dInfo(tf, args, inputShape, filter.shape as Shape4, 1);
  const npix = ci.outHeight * ci.outWidth;
  const K = ci.filterHeight * ci.filterWidth * ci.inChannels;
  const N = ci.outChannels;
  const dx = new Float32Array(inputShape[0] * inputShape[1] * inputShape[2] * inputShape[3]);
  const dP = scratch('a', npix * K);
  for (let b = 0; b < ci.batchSize; b++) {
    gemm(npix, K, N, { data: dyv, offset: b * npix * N, rowStride: N, colStride: 1 },
      { data: wv, offset: 0, rowStride: 1, colStride: N }, dP, 0, K, false);
    col2im(dP, ci, dx, b);
  }
  return args.backend.makeTensorInfo(inputShape, 'float32', dx);
};

/** Activations FusedConv2D / _FusedMatMul may carry; prelu needs a weights tensor and stays with the stock kernel. */
export function applyActivationInPlace(v: Float32Array, activation: unknown, leakyreluAlpha: unknown): boolean {
  const n = v.length;
  switch (activation ?? 'linear') {
    case 'linear':
      return true;
    case 'relu':
      for (let i = 0; i < n; i++) if (v[i] < 0) v[i] = 0;
      return true;
    case 'relu6':
      for (let i = 0; i < n; i++) v[i] = Math.min(Math.max(v[i], 0), 6);
      return true;
    case 'elu':
      for (let i = 0; i < n; i++) if (!(v[i] >= 0)) v[i] = Math.exp(v[i]) - 1;
      return true;
    case 'sigmoid':
      for (let i = 0; i < n; i++) v[i] = 1 / (1 + Math.exp(-v[i]));
      return true;
    case 'leakyrelu': {
      const a = typeof leakyreluAlpha === 'number' ? leakyreluAlpha : 0.2;
      for (let i = 0; i < n; i++) if (v[i] < 0) v[i] = a * v[i];
      return true;
    }
    default:
      return false;
  }
}

const FUSABLE = new Set(['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu']);

/** Adds a bias broadcast along the last axis (length n or 1) to v viewed as rows of n. */
export function addBiasRows(v: Float32Array, bias: Float32Array, n: number): boolean {
  if (bias.length === n) {
    for (let o = 0; o < v.length; o += n) for (let j = 0; j < n; j++) v[o + j] += bias[j];
    return true;
  }
  if (bias.length === 1) {
    const s = bias[0];
    for (let i = 0; i < v.length; i++) v[i] += s;
    return true;
  }
  return false;
}

export const fusedConv2d: FastKernel = (args, tf) => {
  const { x, filter, bias, preluActivationWeights } = args.inputs as {
    x: TensorInfo; filter: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo;
  };
  if (!isNhwc(args.attrs.dataFormat) || preluActivationWeights != null) return null;
  if (!FUSABLE.has((args.attrs.activation as string | undefined) ?? 'linear')) return null;
  const xv = f32(args.backend, x);
  const wv = f32(args.backend, filter);
  if (xv === null || wv === null) return null;
  let bv: Float32Array | null = null;
  if (bias != null) {
    bv = f32(args.backend, bias);
    if (bv === null || (bv.length !== 1 && bv.length !== filter.shape[3]) || bias.shape.length > 1) return null;
  }
  const ci = conv2dInfo(tf, args, x.shape as Shape4, filter.shape as Shape4, args.attrs.dilations);
  const out = new Float32Array(ci.batchSize * ci.outHeight * ci.outWidth * ci.outChannels);
  conv2dForward(xv, wv, ci, out);
  if (bv !== null) addBiasRows(out, bv, ci.outChannels);
  applyActivationInPlace(out, args.attrs.activation, args.attrs.leakyreluAlpha);
  return args.backend.makeTensorInfo(ci.outShape, 'float32', out);
};
