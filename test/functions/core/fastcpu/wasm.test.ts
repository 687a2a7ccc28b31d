import * as tf from '@tensorflow/tfjs';
import { enableFastCpuTraining } from '../../../../functions/core/fastcpu';

/**
 * The WebAssembly path: dlops's kernels on 'wasm' (reading the wasm heap) and the bridges to stock 'cpu'
 * kernels agree with the stock 'cpu' backend, and training there follows the stock loss trajectory.
 */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const rand = rng(99);

function values(shape: number[], relu = false): Float32Array {
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (relu ? Math.max(0, rand() * 2 - 1) : rand() * 2 - 1));
}

/** Runs `f` on fresh tensors of `inputs` on the given backend and returns the output values. */
async function on(backend: string, inputs: Array<[Float32Array, number[]]>, f: (...ts: tf.Tensor[]) => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(backend);
  return tf.tidy(() => f(...inputs.map(([v, s]) => tf.tensor(v, s))).dataSync() as Float32Array);
}

function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

let backend = '';
beforeAll(async () => {
  backend = (await enableFastCpuTraining(tf)).backend;
});

it('selects the WebAssembly backend with dlops gradient kernels', () => {
  expect(backend).toBe('wasm');
  expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
});

it.each([
  { shape: [3, 11, 9, 2], filter: [3, 3, 2, 5], strides: 1, pad: 'same' as const },
  { shape: [2, 12, 10, 3], filter: [2, 4, 3, 4], strides: 2, pad: 'valid' as const },
  { shape: [8, 28, 28, 1], filter: [3, 3, 1, 32], strides: 1, pad: 'valid' as const },
])('conv2d filter gradient on wasm agrees with stock cpu: %j', async ({ shape, filter, strides, pad }) => {
  const x = values(shape);
  const info = tf.backend_util.computeConv2DInfo(shape as [number, number, number, number], filter as [number, number, number, number], strides, 1, pad);
  const dy = values(info.outShape);
  const grad = (xt: tf.Tensor, dyt: tf.Tensor): tf.Tensor =>
    tf.engine().runKernel('Conv2DBackpropFilter', { x: xt, dy: dyt }, { strides, pad, dataFormat: 'NHWC', filterShape: filter }) as tf.Tensor;
  const wasm = await on('wasm', [[x, shape], [dy, info.outShape]], grad);
  const cpu = await on('cpu', [[x, shape], [dy, info.outShape]], grad);
  expect(relativeError(wasm, cpu)).toBeLessThan(1e-5);
});

it.each([
  { a: [4, 9], b: [9, 6], transposeA: false, transposeB: false },
  { a: [7, 33], b: [33, 5], transposeA: false, transposeB: true },
  { a: [33, 7], b: [33, 5], transposeA: true, transposeB: false },
  { a: [2, 19, 6], b: [2, 19, 11], transposeA: true, transposeB: true },
])('matmul on wasm agrees with stock cpu: %j', async ({ a, b, transposeA, transposeB }) => {
  const av = values(a);
  const bv = values(b);
  const bShape = transposeB ? [...b.slice(0, -2), b[b.length - 1], b[b.length - 2]] : b;
  const f = (at: tf.Tensor, bt: tf.Tensor): tf.Tensor => tf.matMul(at, bt, transposeA, transposeB);
  const wasm = await on('wasm', [[av, a], [bv, bShape]], f);
  const cpu = await on('cpu', [[av, a], [bv, bShape]], f);
  expect(relativeError(wasm, cpu)).toBeLessThan(1e-5);
});

it.each([
  { inputShape: [2, 9, 9, 4], filter: [3, 3, 4, 6], strides: 1, pad: 'same' as const },
  { inputShape: [3, 10, 7, 2], filter: [2, 4, 2, 5], strides: 1, pad: 'same' as const },
  { inputShape: [2, 11, 8, 3], filter: [3, 2, 3, 4], strides: 1, pad: 'valid' as const },
  { inputShape: [2, 11, 8, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'same' as const },
])('conv2d input gradient on wasm agrees with stock cpu: %j', async ({ inputShape, filter, strides, pad }) => {
  const info = tf.backend_util.computeConv2DInfo(inputShape as [number, number, number, number], filter as [number, number, number, number], strides, 1, pad);
  const dy = values(info.outShape);
  const w = values(filter);
  const dx = (dyt: tf.Tensor, wt: tf.Tensor): tf.Tensor =>
    tf.engine().runKernel('Conv2DBackpropInput', { dy: dyt, filter: wt }, { strides, pad, dataFormat: 'NHWC', inputShape }) as tf.Tensor;
  const inputs: Array<[Float32Array, number[]]> = [[dy, info.outShape], [w, filter]];
  expect(relativeError(await on('wasm', inputs, dx), await on('cpu', inputs, dx))).toBeLessThan(1e-5);
});

it('bias-gradient sum on wasm agrees with stock cpu', async () => {
  const dyShape = [2, 9, 9, 6];
  const dy = values(dyShape);
  const sum = (t: tf.Tensor): tf.Tensor => tf.sum(t, [0, 1, 2]);
  expect(relativeError(await on('wasm', [[dy, dyShape]], sum), await on('cpu', [[dy, dyShape]], sum))).toBeLessThan(1e-5);
});

it('max-pool gradient on wasm agrees with stock cpu: ties, NaN, -Infinity', async () => {
  const shape = [2, 9, 8, 3];
  const x = values(shape, true);
  x[5] = Number.NaN;
  x[40] = Number.NEGATIVE_INFINITY;
  for (const [size, stride] of [[2, 2], [3, 2], [2, 1]]) {
    const pad = 'same' as const;
    const info = tf.backend_util.computePool2DInfo(shape as [number, number, number, number], size, stride, 1, pad);
    const dy = values(info.outShape);
    const attrs = { filterSize: size, strides: stride, pad };
    const f = (xt: tf.Tensor, dyt: tf.Tensor): tf.Tensor => {
      const output = tf.engine().runKernel('MaxPool', { x: xt }, attrs) as tf.Tensor;
      return tf.engine().runKernel('MaxPoolGrad', { dy: dyt, input: xt, output }, attrs) as tf.Tensor;
    };
    const inputs: Array<[Float32Array, number[]]> = [[x, shape], [dy, info.outShape]];
    const wasm = await on('wasm', inputs, f);
    const cpu = await on('cpu', inputs, f);
    expect(Array.from(wasm).some((v) => Number.isNaN(v))).toBe(false);
    expect(relativeError(wasm, cpu)).toBeLessThan(1e-5);
  }
});

it('bridges a kernel the wasm backend lacks to the cpu kernel', async () => {
  const shape = [2, 7, 7, 3];
  const x = values(shape);
  const w = values([3, 3, 3, 2]);
  // DepthwiseConv2dNativeBackpropFilter exists only on 'cpu'.
  const f = (xt: tf.Tensor, wt: tf.Tensor): tf.Tensor =>
    tf.grad((k: tf.Tensor) => tf.depthwiseConv2d(xt as tf.Tensor4D, k as tf.Tensor4D, 1, 'same').sum())(wt);
  expect(tf.getKernelsForBackend('wasm').some((k) => k.kernelName === 'DepthwiseConv2dNativeBackpropFilter')).toBe(true);
  const wasm = await on('wasm', [[x, shape], [w, [3, 3, 3, 2]]], f);
  const cpu = await on('cpu', [[x, shape], [w, [3, 3, 3, 2]]], f);
  expect(relativeError(wasm, cpu)).toBeLessThan(1e-5);
});

it('trains the seed-shaped network on wasm along the stock cpu trajectory', async () => {
  const build = (): tf.Sequential => {
    const m = tf.sequential();
    m.add(tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, activation: 'relu' }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
    m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    return m;
  };
  const x = values([16, 12, 12, 1]);
  const labels = Int32Array.from({ length: 16 }, () => Math.floor(rand() * 10));
  await tf.setBackend('cpu');
  const init = build();
  const initial = init.getWeights().map((w) => ({ v: w.dataSync().slice() as Float32Array, s: w.shape }));
  init.dispose();
  const run = async (name: string): Promise<number[]> => {
    await tf.setBackend(name);
    const m = build();
    m.setWeights(initial.map(({ v, s }) => tf.tensor(v, s)));
    const xt = tf.tensor(x, [16, 12, 12, 1]);
    const yt = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
    const losses: number[] = [];
    for (let i = 0; i < 6; i++) losses.push((await m.trainOnBatch(xt, yt)) as number);
    tf.dispose([xt, yt]);
    m.dispose();
    return losses;
  };
  const cpu = await run('cpu');
  const wasm = await run('wasm');
  expect(cpu[5]).toBeLessThan(cpu[0]);
  for (let i = 0; i < cpu.length; i++) expect(Math.abs(wasm[i] - cpu[i]) / cpu[i]).toBeLessThan(1e-4);
});
