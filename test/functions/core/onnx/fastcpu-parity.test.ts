import * as tf from '@tensorflow/tfjs';
import { enableFastCpuKernels } from '../../../../functions/core/fastcpu';
import { buildModel } from '../../../../functions/core/model';
import type { LayerSpec } from '../../../../functions/core/manifest';
import { checkParity, exportLayersModel } from '../../../../functions/core/onnx';

/**
 * In Lambda, TF.js runs on the pure-JS backend with dlops's fast CPU kernels (backend.ts), so
 * that is the TF.js side Export's parity check really compares against.
 */
describe('parity with the fast CPU kernels enabled (the Lambda configuration)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    expect(enableFastCpuKernels(tf).kernels.length).toBeGreaterThan(0);
  });

  test.each<[string, number[], LayerSpec[]]>([
    ['seed network', [28, 28, 1], [
      { type: 'conv2d', filters: 32, kernelSize: 3, activation: 'relu' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'flatten' },
      { type: 'dense', units: 10, activation: 'softmax' },
    ]],
    ['MLP 784-128-10', [28, 28, 1], [{ type: 'flatten' }, { type: 'dense', units: 128, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }]],
    ['strided same-padded convs, pools, batch norm, global pooling', [13, 11, 3], [
      { type: 'conv2d', filters: 8, kernelSize: 5, strides: 2, padding: 'same', activation: 'relu6' },
      { type: 'batchNormalization' },
      { type: 'averagePooling2d', poolSize: 3, strides: 1, padding: 'same' },
      { type: 'conv2d', filters: 6, kernelSize: 3, padding: 'same', activation: 'tanh' },
      { type: 'maxPooling2d', poolSize: 2, padding: 'same' },
      { type: 'globalAveragePooling2d' },
      { type: 'dense', units: 4, activation: 'softmax' },
    ]],
  ])('%s on 100 rows', async (_name, inputShape, layers) => {
    const model = buildModel(tf, { inputShape, layers, seed: 9 });
    const width = inputShape.reduce((a, b) => a * b, 1);
    const x = Float32Array.from({ length: 100 * width }, (_, i) => Math.sin(i * 0.013) * 2);
    const result = await checkParity(tf, model, exportLayersModel(model).bytes, x, [100, ...inputShape]);
    expect(result.rows).toBe(100);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });
});
