import * as tf from '@tensorflow/tfjs';
import { disableFastCpuKernels, enableFastCpuKernels } from '../../../../functions/core/fastcpu';

/**
 * Each fast kernel against the stock tfjs-backend-cpu kernel on randomized shapes. Error measure: the largest
 * absolute difference over the largest stock magnitude (norm-wise relative error), required below 1e-5.
 */
const TOLERANCE = 1e-5;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const rand = rng(12345);
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

function tensor(shape: number[], opts: { relu?: boolean } = {}): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = rand() * 2 - 1;
    // ReLU outputs: about half exact zeros, so max-pool windows have ties, as in training.
    v[i] = opts.relu === true ? Math.max(0, x) : x;
  }
  return tf.tensor(v, shape);
}

type Inputs = Record<string, tf.Tensor>;

function run(kernel: string, inputs: Inputs, attrs: object, fast: boolean): { shape: number[]; values: Float32Array } {
  if (fast) enableFastCpuKernels(tf);
  else disableFastCpuKernels(tf);
  const out = tf.engine().runKernel(kernel, inputs as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;
  const r = { shape: out.shape, values: out.dataSync() as Float32Array };
  out.dispose();
  return r;
}

function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

function expectSame(kernel: string, inputs: Inputs, attrs: object): void {
  const stock = run(kernel, inputs, attrs, false);
  const fast = run(kernel, inputs, attrs, true);
  expect(fast.shape).toEqual(stock.shape);
  expect(fast.values.length).toBe(stock.values.length);
  let nonFinite = 0;
  for (let i = 0; i < stock.values.length; i++) if (!Number.isFinite(stock.values[i])) nonFinite++;
  expect(nonFinite).toBe(0);
  const err = relativeError(fast.values, stock.values);
  if (!(err <= TOLERANCE)) {
    throw new Error(`${kernel} ${JSON.stringify(attrs)} shapes ${JSON.stringify(Object.values(inputs).map((t) => t.shape))}: relative error ${err}`);
  }
}

interface ConvCase {
  b: number; h: number; w: number; cin: number; cout: number; fh: number; fw: number;
  stride: [number, number]; pad: 'same' | 'valid'; dilation: [number, number];
}

function convCase(allowDilation: boolean): ConvCase {
  const dilated = allowDilation && rand() < 0.3;
  const stride: [number, number] = dilated ? [1, 1] : [int(1, 3), int(1, 3)];
  const dilation: [number, number] = dilated ? [int(1, 2), 2] : [1, 1];
  const fh = int(1, 5);
  const fw = int(1, 5);
  const pad = pick(['same', 'valid'] as const);
  const minH = pad === 'valid' ? (fh - 1) * dilation[0] + 1 : 1;
  const minW = pad === 'valid' ? (fw - 1) * dilation[1] + 1 : 1;
  return { b: int(1, 4), h: int(minH, minH + 9), w: int(minW, minW + 9), cin: int(1, 7), cout: int(1, 9), fh, fw, stride, pad, dilation };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

afterAll(() => {
  disableFastCpuKernels(tf);
});

describe('enableFastCpuKernels', () => {
  it('registers the gradient kernels and is idempotent', () => {
    const first = enableFastCpuKernels(tf).kernels;
    const second = enableFastCpuKernels(tf).kernels;
    expect(first).toEqual(expect.arrayContaining(['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad', 'AvgPoolGrad']));
    expect(second).toEqual(first);
    expect(disableFastCpuKernels(tf).kernels).toEqual(first);
    expect(disableFastCpuKernels(tf).kernels).toEqual([]);
  });
});

describe('convolution kernels agree with stock', () => {
  it.each(Array.from({ length: 24 }, (_, i) => i))('random case %i', () => {
    const c = convCase(true);
    const x = tensor([c.b, c.h, c.w, c.cin]);
    const filter = tensor([c.fh, c.fw, c.cin, c.cout]);
    expectSame('Conv2D', { x, filter }, { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilation });
    const bias = tensor([c.cout]);
    expectSame('FusedConv2D', { x, filter, bias }, {
      strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilation, activation: pick(['relu', 'linear', 'relu6', 'elu']),
    });

    const g = convCase(false);
    const gx = tensor([g.b, g.h, g.w, g.cin]);
    const gFilterShape: [number, number, number, number] = [g.fh, g.fw, g.cin, g.cout];
    const info = tf.backend_util.computeConv2DInfo([g.b, g.h, g.w, g.cin], gFilterShape, g.stride, 1, g.pad);
    const dy = tensor(info.outShape);
    expectSame('Conv2DBackpropFilter', { x: gx, dy }, { strides: g.stride, pad: g.pad, dataFormat: 'NHWC', filterShape: gFilterShape });
    expectSame('Conv2DBackpropInput', { dy, filter: tensor(gFilterShape) }, {
      strides: g.stride, pad: g.pad, dataFormat: 'NHWC', inputShape: [g.b, g.h, g.w, g.cin],
    });
    tf.dispose([x, filter, bias, gx, dy]);
  });

  it('handles the seed network shapes (28x28x1, 32 filters, batch 8)', () => {
    const x = tensor([8, 28, 28, 1]);
    const dy = tensor([8, 26, 26, 32]);
    const filter = tensor([3, 3, 1, 32]);
    expectSame('Conv2D', { x, filter }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] });
    expectSame('Conv2DBackpropFilter', { x, dy }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', filterShape: [3, 3, 1, 32] });
    expectSame('Conv2DBackpropInput', { dy, filter }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', inputShape: [8, 28, 28, 1] });
    tf.dispose([x, dy, filter]);
  });
});

describe('pooling kernels agree with stock', () => {
  it.each(Array.from({ length: 24 }, (_, i) => i))('random case %i', () => {
    const f: [number, number] = [int(1, 4), int(1, 4)];
    const strides: [number, number] = [int(1, 3), int(1, 3)];
    const pad = pick(['same', 'valid'] as const);
    const shape = [int(1, 3), int(f[0], f[0] + 9), int(f[1], f[1] + 9), int(1, 6)];
    const x = tensor(shape, { relu: true });
    const attrs = { filterSize: f, strides, pad };
    expectSame('MaxPool', { x }, attrs);
    const info = tf.backend_util.computePool2DInfo(shape as [number, number, number, number], f, strides, 1, pad);
    const dy = tensor(info.outShape);
    // Output from the fast MaxPool (its argmax is reused) and from the stock one (argmax recomputed).
    const output = tf.engine().runKernel('MaxPool', { x }, attrs) as tf.Tensor;
    expectSame('MaxPoolGrad', { dy, input: x, output }, attrs);
    disableFastCpuKernels(tf);
    const stockOutput = tf.engine().runKernel('MaxPool', { x }, attrs) as tf.Tensor;
    expectSame('MaxPoolGrad', { dy, input: x, output: stockOutput }, attrs);
    stockOutput.dispose();
    expectSame('AvgPoolGrad', { dy, input: x }, attrs);
    tf.dispose([x, dy, output]);
  });
});

describe('max-pool gradient, 2x2 stride 2 (one-pass path)', () => {
  it.each([
    { shape: [2, 8, 6, 5], pad: 'valid' as const },
    { shape: [3, 9, 7, 4], pad: 'valid' as const },
    { shape: [2, 6, 8, 3], pad: 'same' as const },
  ])('agrees with stock for %j, including ties, NaN and infinities', ({ shape, pad }) => {
    const x = tensor(shape, { relu: true });
    const v = x.dataSync().slice() as Float32Array;
    v[3] = NaN;
    v[10] = Number.POSITIVE_INFINITY;
    v[11] = Number.NEGATIVE_INFINITY;
    const xs = tf.tensor(v, shape);
    const attrs = { filterSize: [2, 2], strides: [2, 2], pad };
    disableFastCpuKernels(tf);
    const output = tf.engine().runKernel('MaxPool', { x: xs }, attrs) as tf.Tensor;
    const dy = tensor(output.shape);
    const stock = run('MaxPoolGrad', { dy, input: xs, output }, attrs, false);
    const fast = run('MaxPoolGrad', { dy, input: xs, output }, attrs, true);
    expect(fast.shape).toEqual(stock.shape);
    expect(relativeError(fast.values, stock.values)).toBeLessThanOrEqual(TOLERANCE);
    tf.dispose([x, xs, output, dy]);
  });
});

it('ReLU and Step keep the stock results for NaN, infinities and signed zeros', () => {
  const x = tf.tensor1d([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0, -2.5, 3.25]);
  for (const [kernel, attrs] of [['Relu', {}], ['Step', { alpha: 0 }], ['Step', { alpha: 0.3 }]] as const) {
    const stock = run(kernel, { x }, attrs, false).values;
    const fast = run(kernel, { x }, attrs, true).values;
    expect(Array.from(fast).map(String)).toEqual(Array.from(stock).map(String));
  }
  x.dispose();
});

describe('matmul kernels agree with stock', () => {
  it.each(Array.from({ length: 16 }, (_, i) => i))('random case %i', () => {
    const m = int(1, 40), n = int(1, 40), k = int(1, 300);
    const transposeA = rand() < 0.5, transposeB = rand() < 0.5;
    const batch = pick([[], [1], [3], [2, 2]]);
    const bBatch = rand() < 0.3 ? [] : batch;
    const a = tensor([...batch, ...(transposeA ? [k, m] : [m, k])]);
    const b = tensor([...bBatch, ...(transposeB ? [n, k] : [k, n])]);
    expectSame('BatchMatMul', { a, b }, { transposeA, transposeB });
    const bias = tensor([n]);
    expectSame('_FusedMatMul', { a, b, bias }, { transposeA, transposeB, activation: pick(['linear', 'relu', 'sigmoid']) });
    tf.dispose([a, b, bias]);
  });
});

describe('element-wise kernels agree with stock', () => {
  it.each(Array.from({ length: 12 }, (_, i) => i))('random case %i', () => {
    const shape = Array.from({ length: int(1, 4) }, () => int(1, 7));
    const a = tensor(shape);
    const tail = shape.slice(int(0, shape.length));
    const shapes = [shape, [], tail, [1, ...tail]];
    for (const bShape of shapes) {
      const b = tensor(bShape);
      for (const kernel of ['Add', 'Sub', 'Multiply']) {
        expectSame(kernel, { a, b }, {});
        expectSame(kernel, { a: b, b: a }, {});
      }
      b.dispose();
    }
    expectSame('Relu', { x: a }, {});
    expectSame('Step', { x: a }, { alpha: pick([0, 0.3]) });
    const rank = shape.length;
    for (const axis of [[0], [rank - 1], [...Array(rank).keys()], [...Array(rank).keys()].slice(0, Math.max(1, rank - 1))]) {
      expectSame('Sum', { x: a }, { axis, keepDims: rand() < 0.5 });
    }
    a.dispose();
  });
});
