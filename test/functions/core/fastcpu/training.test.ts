import * as tf from '@tensorflow/tfjs';
import { disableFastCpuKernels, enableFastCpuKernels } from '../../../../functions/core/fastcpu';

/**
 * Given the same initial weights and batches, training with the fast kernels follows the stock loss trajectory.
 * The network has two convolutions so that Conv2DBackpropInput runs too (the first layer needs no input gradient).
 */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function buildModel(): tf.Sequential {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [14, 14, 1], filters: 8, kernelSize: 3, activation: 'relu' }));
  m.add(tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  m.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return m;
}

async function trajectory(fast: boolean, initial: Float32Array[], steps: number): Promise<{ losses: number[]; weights: Float32Array[] }> {
  if (fast) enableFastCpuKernels(tf);
  else disableFastCpuKernels(tf);
  const model = buildModel();
  model.setWeights(initial.map((v, i) => tf.tensor(v, model.getWeights()[i].shape)));
  // One fixed batch: the model memorises it, so the loss must fall, and both runs see identical inputs.
  const rand = rng(7);
  const x = tf.tensor4d(Float32Array.from({ length: 8 * 14 * 14 }, () => rand()), [8, 14, 14, 1]);
  const labels = tf.tensor1d(Int32Array.from({ length: 8 }, () => Math.floor(rand() * 10)), 'int32');
  const y = tf.oneHot(labels, 10);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push((await model.trainOnBatch(x, y)) as number);
  tf.dispose([x, labels, y]);
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  return { losses, weights };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

afterAll(() => {
  disableFastCpuKernels(tf);
});

it('trains to the same losses and weights as the stock kernels', async () => {
  const init = buildModel();
  const initial = init.getWeights().map((w) => w.dataSync().slice() as Float32Array);
  init.dispose();

  const stock = await trajectory(false, initial, 6);
  const fast = await trajectory(true, initial, 6);

  expect(stock.losses[stock.losses.length - 1]).toBeLessThan(stock.losses[0]);
  for (let i = 0; i < stock.losses.length; i++) {
    expect(Math.abs(fast.losses[i] - stock.losses[i]) / Math.abs(stock.losses[i])).toBeLessThan(1e-4);
  }
  for (let w = 0; w < stock.weights.length; w++) {
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < stock.weights[w].length; i++) {
      diff = Math.max(diff, Math.abs(fast.weights[w][i] - stock.weights[w][i]));
      scale = Math.max(scale, Math.abs(stock.weights[w][i]));
    }
    expect(diff / scale).toBeLessThan(1e-3);
  }
});
