import * as tf from '@tensorflow/tfjs';
import { ManifestError, UnsupportedLayerError } from '../../../functions/core/errors';
import type { LayerSpec } from '../../../functions/core/manifest';
import { buildModel, defaultLayers, inferShapes, resolveLayers } from '../../../functions/core/model';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** The output shape TF.js gives a built model, without the batch dimension. */
function tfShape(layers: LayerSpec[], inputShape: number[]): number[] {
  const model = buildModel(tf, { inputShape, layers });
  const shape = (model.outputs[0].shape as number[]).slice(1);
  model.dispose();
  return shape;
}

describe('buildModel: each layer type', () => {
  const cases: Array<{ name: string; inputShape: number[]; layers: LayerSpec[]; expected: number[] }> = [
    { name: 'dense', inputShape: [5], layers: [{ type: 'dense', units: 7, activation: 'relu' }], expected: [7] },
    { name: 'conv2d valid', inputShape: [10, 9, 2], layers: [{ type: 'conv2d', filters: 4, kernelSize: 3 }], expected: [8, 7, 4] },
    { name: 'conv2d same, strides 2', inputShape: [9, 9, 1], layers: [{ type: 'conv2d', filters: 3, kernelSize: [3, 2], strides: 2, padding: 'same' }], expected: [5, 5, 3] },
    { name: 'maxPooling2d', inputShape: [9, 8, 3], layers: [{ type: 'maxPooling2d', poolSize: 2 }], expected: [4, 4, 3] },
    { name: 'maxPooling2d strides 1', inputShape: [6, 6, 1], layers: [{ type: 'maxPooling2d', poolSize: 3, strides: 1 }], expected: [4, 4, 1] },
    { name: 'averagePooling2d same', inputShape: [7, 7, 2], layers: [{ type: 'averagePooling2d', poolSize: 2, padding: 'same' }], expected: [4, 4, 2] },
    { name: 'flatten', inputShape: [4, 3, 2], layers: [{ type: 'flatten' }], expected: [24] },
    { name: 'dropout', inputShape: [6], layers: [{ type: 'dropout', rate: 0.5 }], expected: [6] },
    { name: 'batchNormalization', inputShape: [5, 5, 3], layers: [{ type: 'batchNormalization', momentum: 0.9 }], expected: [5, 5, 3] },
    { name: 'globalAveragePooling2d', inputShape: [5, 4, 6], layers: [{ type: 'globalAveragePooling2d' }], expected: [6] },
    { name: 'activation', inputShape: [3], layers: [{ type: 'activation', activation: 'tanh' }], expected: [3] },
  ];
  test.each(cases)('$name gives the output shape TF.js computes and inferShapes predicts', ({ inputShape, layers, expected }) => {
    // Given a one-layer spec, when it is built, then TF.js and the shape check agree with the expected shape
    expect(tfShape(layers, inputShape)).toEqual(expected);
    expect(inferShapes(layers, inputShape).at(-1)).toEqual(expected);
  });

  test('the same seed gives the same initial weights, another seed different ones', () => {
    const layers = defaultLayers('classification', [6, 6, 1], 3);
    const a = buildModel(tf, { inputShape: [6, 6, 1], layers, seed: 7 });
    const b = buildModel(tf, { inputShape: [6, 6, 1], layers, seed: 7 });
    const c = buildModel(tf, { inputShape: [6, 6, 1], layers, seed: 8 });
    const first = (m: tf.Sequential) => Array.from(m.getWeights()[0].dataSync());
    expect(first(b)).toEqual(first(a));
    expect(first(c)).not.toEqual(first(a));
  });
});

describe('default specs', () => {
  test('an image classification input gets the seed network', () => {
    const layers = defaultLayers('classification', [28, 28, 1], 10);
    expect(layers.map((l) => l.type)).toEqual(['conv2d', 'maxPooling2d', 'flatten', 'dense']);
    expect(tfShape(layers, [28, 28, 1])).toEqual([10]);
    expect(inferShapes(layers, [28, 28, 1])).toEqual([[26, 26, 32], [13, 13, 32], [5408], [10]]);
  });

  test('a flat classification input gets the 128-unit MLP', () => {
    const layers = resolveLayers({ task: 'classification', inputShape: [784], numClasses: 10 });
    expect(layers).toEqual([
      { type: 'dense', units: 128, activation: 'relu' },
      { type: 'dense', units: 10, activation: 'softmax' },
    ]);
  });

  test('regression gets dense 64, 64, 1 and outputs one value', () => {
    const layers = resolveLayers({ task: 'regression', inputShape: [4] });
    expect(layers.map((l) => (l.type === 'dense' ? l.units : l.type))).toEqual([64, 64, 1]);
    expect(tfShape(layers, [4])).toEqual([1]);
  });
});

describe('bad specs', () => {
  test('conv2d on a flat input names the layer index and type', () => {
    expect(() => resolveLayers({ task: 'classification', inputShape: [784], numClasses: 10, layers: [{ type: 'conv2d', filters: 8, kernelSize: 3 }, { type: 'flatten' }, { type: 'dense', units: 10, activation: 'softmax' }] })).toThrow(
      new ManifestError('model[0] (conv2d) needs an image input of shape [height, width, channels]; it receives [784]. Give the features a 3-d shape or use dense layers.'),
    );
  });

  test('dense on an image input asks for a flatten', () => {
    expect(() => inferShapes([{ type: 'conv2d', filters: 2, kernelSize: 3 }, { type: 'dense', units: 3 }], [8, 8, 1])).toThrow(/model\[1\] \(dense\) needs a flat input; it receives \[6, 6, 2\]/);
  });

  test('an unknown layer type is an UnsupportedLayerError naming it', () => {
    const layers = [{ type: 'lstm', units: 4 }] as unknown as LayerSpec[];
    expect(() => inferShapes(layers, [4])).toThrow(UnsupportedLayerError);
    expect(() => inferShapes(layers, [4])).toThrow(/model\[0\]: layer type "lstm" is not supported/);
  });

  test('a window larger than its input is rejected', () => {
    expect(() => inferShapes([{ type: 'conv2d', filters: 1, kernelSize: 5 }], [3, 3, 1])).toThrow(/model\[0\] \(conv2d\) would output \[-1, -1, 1\]/);
  });

  test('bad field values name the field and the value received', () => {
    expect(() => inferShapes([{ type: 'dense', units: 0 }], [3])).toThrow('model[0] (dense): units must be a positive integer. Received 0.');
    expect(() => inferShapes([{ type: 'dropout', rate: 1.5 }], [3])).toThrow('model[0] (dropout): rate must be a number in [0, 1). Received 1.5.');
    expect(() => inferShapes([{ type: 'activation', activation: 'gelu' as never }], [3])).toThrow(/model\[0\] \(activation\): activation must be one of .*Received "gelu"/);
    expect(() => inferShapes([{ type: 'maxPooling2d', poolSize: [2, 2, 2] as never }], [4, 4, 1])).toThrow(/poolSize must be a number or a pair/);
  });

  test('a classification model must end in softmax over the classes', () => {
    expect(() => resolveLayers({ task: 'classification', inputShape: [4], numClasses: 3, layers: [{ type: 'dense', units: 2, activation: 'softmax' }] })).toThrow(/must end with 3 outputs/);
    expect(() => resolveLayers({ task: 'classification', inputShape: [4], numClasses: 3, layers: [{ type: 'dense', units: 3 }] })).toThrow(/must end with a softmax activation.*linear/);
    expect(() => resolveLayers({ task: 'classification', inputShape: [4], numClasses: 3, layers: [{ type: 'dense', units: 3 }, { type: 'activation', activation: 'softmax' }] })).not.toThrow();
  });

  test('regression must end with one output; classification needs 2+ classes', () => {
    expect(() => resolveLayers({ task: 'regression', inputShape: [4], layers: [{ type: 'dense', units: 2 }] })).toThrow(/regression model must end with 1 output; the last layer outputs \[2\]/);
    expect(() => resolveLayers({ task: 'classification', inputShape: [4], numClasses: 1 })).toThrow('A classification model needs at least 2 classes. Received 1.');
  });
});
