import type { TensorInfo } from '@tensorflow/tfjs';
import { f32, sizeOf, type FastKernel } from './backend';

/**
 * Element-wise kernels on the shapes training produces: equal shapes, a scalar, or a bias broadcast over the
 * trailing axes. The stock kernels compute a broadcast index per element even for these, which made a bias add
 * on a conv output cost as much as the convolution. Anything else returns null and runs the stock kernel.
 */

/** Length of the repeating block when `small` broadcasts over the trailing axes of `big`, else -1. */
function trailingBroadcast(big: readonly number[], small: readonly number[]): number {
  let first = 0;
  while (first < small.length && small[first] === 1) first++;
  const trimmed = small.slice(first);
  if (trimmed.length > big.length) return -1;
  const off = big.length - trimmed.length;
  for (let i = 0; i < trimmed.length; i++) if (trimmed[i] !== big[off + i]) return -1;
  return sizeOf(trimmed);
}

function binary(op: (a: Float32Array, b: Float32Array, out: Float32Array, period: number, swapped: boolean) => void): FastKernel {
  return (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const av = f32(args.backend, a);
    const bv = f32(args.backend, b);
    if (av === null || bv === null) return null;
    if (a.shape.length >= b.shape.length && av.length >= bv.length) {
      const period = trailingBroadcast(a.shape, b.shape);
      if (period < 0 || period !== bv.length) return null;
      const out = new Float32Array(av.length);
      op(av, bv, out, period, false);
      return args.backend.makeTensorInfo(a.shape.slice(), 'float32', out);
    }
    if (b.shape.length >= a.shape.length && bv.length >= av.length) {
      const period = trailingBroadcast(b.shape, a.shape);
      if (period < 0 || period !== av.length) return null;
      const out = new Float32Array(bv.length);
      op(bv, av, out, period, true);
      return args.backend.makeTensorInfo(b.shape.slice(), 'float32', out);
    }
    return null;
  };
}

export const add = binary((big, small, out, period) => {
  const n = big.length;
  if (period === n) {
    for (let i = 0; i < n; i++) out[i] = big[i] + small[i];
  } else if (period === 1) {
    const s = small[0];
    for (let i = 0; i < n; i++) out[i] = big[i] + s;
  } else {
    for (let o = 0; o < n; o += period) for (let j = 0; j < period; j++) out[o + j] = big[o + j] + small[j];
  }
});

export const multiply = binary((big, small, out, period) => {
  const n = big.length;
  if (period === n) {
    for (let i = 0; i < n; i++) out[i] = big[i] * small[i];
  } else if (period === 1) {
    const s = small[0];
    for (let i = 0; i < n; i++) out[i] = big[i] * s;
  } else {
    for (let o = 0; o < n; o += period) for (let j = 0; j < period; j++) out[o + j] = big[o + j] * small[j];
  }
});

export const sub = binary((big, small, out, period, swapped) => {
  const n = big.length;
  const sign = swapped ? -1 : 1;
  if (period === n) {
    for (let i = 0; i < n; i++) out[i] = sign * (big[i] - small[i]);
  } else {
    for (let o = 0; o < n; o += period) for (let j = 0; j < period; j++) out[o + j] = sign * (big[o + j] - small[j]);
  }
});

/*
 * ReLU and Step are written without data-dependent branches: on activations about half the signs are random,
 * and a mispredicted branch per element made these loops ~5x slower than the memory traffic they need.
 */
export const relu: FastKernel = (args) => {
  const { x } = args.inputs as { x: TensorInfo };
  const xv = f32(args.backend, x);
  if (xv === null) return null;
  const out = new Float32Array(xv.length);
  for (let i = 0; i < xv.length; i++) {
    const v = xv[i];
    // (v + |v|) / 2 is v for v >= 0 and +0 otherwise, exactly; NaN stays NaN. Only -Infinity gives a wrong
    // NaN (-inf + inf); the check behind the rare NaN predicts well.
    const r = (v + Math.abs(v)) * 0.5;
    out[i] = r !== r && v === Number.NEGATIVE_INFINITY ? 0 : r;
  }
  return args.backend.makeTensorInfo(x.shape.slice(), 'float32', out);
};

export const step: FastKernel = (args) => {
  const { x } = args.inputs as { x: TensorInfo };
  const xv = f32(args.backend, x);
  if (xv === null) return null;
  const alpha = typeof args.attrs.alpha === 'number' ? args.attrs.alpha : 0;
  const out = new Float32Array(xv.length);
  if (alpha === 0) {
    for (let i = 0; i < xv.length; i++) {
      const v = xv[i];
      out[i] = v !== v ? NaN : +(v > 0);
    }
    return args.backend.makeTensorInfo(x.shape.slice(), 'float32', out);
  }
  for (let i = 0; i < xv.length; i++) {
    const v = xv[i];
    const gt = +(v > 0);
    // NaN is rare, so this branch predicts well; the stock kernel maps NaN to NaN.
    out[i] = v !== v ? NaN : gt + (1 - gt) * alpha;
  }
  return args.backend.makeTensorInfo(x.shape.slice(), 'float32', out);
};

/**
 * Sum over a leading run of axes (the bias gradient: every axis but channels) or a trailing run (per-row
 * sums). Accumulates in float64 like the stock kernel, without its transpose of the whole tensor.
 */
export const sum: FastKernel = (args) => {
  const { x } = args.inputs as { x: TensorInfo };
  const xv = f32(args.backend, x);
  if (xv === null) return null;
  const rank = x.shape.length;
  const raw = args.attrs.axis as number | number[] | null | undefined;
  const axes = (raw == null ? [...Array(rank).keys()] : Array.isArray(raw) ? raw : [raw]).map((a) => (a < 0 ? a + rank : a));
  const sorted = [...new Set(axes)].sort((p, q) => p - q);
  if (sorted.length === 0) return null;
  const keepDims = args.attrs.keepDims === true;
  const outShape = keepDims ? x.shape.map((d, i) => (sorted.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !sorted.includes(i));
  const leading = sorted.every((a, i) => a === i);
  const trailing = sorted.every((a, i) => a === rank - sorted.length + i);
  if (leading) {
    const inner = sizeOf(x.shape.slice(sorted.length));
    const acc = new Float64Array(inner);
    const n = xv.length;
    let o = 0;
    // Four rows per pass over acc: a quarter of the accumulator loads and stores.
    for (; o + 4 * inner <= n; o += 4 * inner) {
      for (let j = 0; j < inner; j++) acc[j] += (xv[o + j] + xv[o + inner + j]) + (xv[o + 2 * inner + j] + xv[o + 3 * inner + j]);
    }
    for (; o < n; o += inner) for (let j = 0; j < inner; j++) acc[j] += xv[o + j];
    return args.backend.makeTensorInfo(outShape, 'float32', Float32Array.from(acc));
  }
  if (trailing) {
    const inner = sizeOf(x.shape.slice(rank - sorted.length));
    const rows = inner === 0 ? 0 : xv.length / inner;
    const out = new Float32Array(sizeOf(x.shape.slice(0, rank - sorted.length)));
    for (let r = 0; r < rows; r++) {
      let s = 0;
      const o = r * inner;
      for (let j = 0; j < inner; j++) s += xv[o + j];
      out[r] = s;
    }
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  }
  return null;
};
