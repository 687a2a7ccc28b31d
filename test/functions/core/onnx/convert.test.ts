import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { UnsupportedLayerError } from '../../../../functions/core/errors';
import { buildModel } from '../../../../functions/core/model';
import {
  BATCH_DIM,
  exportLayersModel,
  INPUT_NAME,
  measureParity,
  OPSET,
  OUTPUT_NAME,
  samePads,
  SUPPORTED_ACTIVATIONS,
} from '../../../../functions/core/onnx';

const TOLERANCE = 1e-4;

/** Deterministic inputs in [-2, 2): parity failures must reproduce. */
function inputs(shape: number[], seed = 7): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}

/** Random non-trivial weights everywhere (TF.js's default biases and batch-norm statistics are 0/1 and would hide bugs). */
const randomBias = { biasInitializer: tf.initializers.randomNormal({ stddev: 0.5, seed: 3 }) };
const randomStats = {
  gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 4 }),
  betaInitializer: tf.initializers.randomNormal({ stddev: 0.5, seed: 5 }),
  movingMeanInitializer: tf.initializers.randomNormal({ stddev: 0.5, seed: 6 }),
  movingVarianceInitializer: tf.initializers.randomUniform({ minval: 0.3, maxval: 2, seed: 8 }),
};

/** Exports, loads in ONNX Runtime and compares with TF.js on `rows` random rows. */
async function parity(model: tf.LayersModel, rows = 6) {
  const exported = exportLayersModel(model);
  const shape = [rows, ...(model.inputs[0]!.shape.slice(1) as number[])];
  const result = await measureParity(tf, model, exported.bytes, inputs(shape), shape, { tolerance: TOLERANCE });
  return { ...result, exported };
}

function seq(inputShape: number[], layers: tf.layers.Layer[]): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.inputLayer({ inputShape }));
  for (const l of layers) model.add(l);
  return model;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('exportLayersModel: the ONNX contract', () => {
  test('input "input" float32 [batch, ...inputShape] (NHWC), output "output", opset 13, producer dlops', async () => {
    // Given a small conv network
    const model = seq([5, 6, 2], [tf.layers.conv2d({ filters: 3, kernelSize: 3, ...randomBias }), tf.layers.flatten(), tf.layers.dense({ units: 4, activation: 'softmax' })]);
    // When it is exported and loaded by ONNX Runtime
    const exported = exportLayersModel(model);
    const session = await ort.InferenceSession.create(exported.bytes);
    // Then
    expect(session.inputNames).toEqual([INPUT_NAME]);
    expect(session.outputNames).toEqual([OUTPUT_NAME]);
    expect(exported.inputShape).toEqual([BATCH_DIM, 5, 6, 2]);
    expect(exported.outputShape).toEqual([BATCH_DIM, 4]);
    expect(exported.opset).toBe(OPSET);
    expect(exported.model.producerName).toBe('dlops');
    // The symbolic batch dimension takes any batch size.
    for (const batch of [1, 3]) {
      const out = await session.run({ input: new ort.Tensor('float32', inputs([batch, 5, 6, 2]), [batch, 5, 6, 2]) });
      expect(out.output!.dims).toEqual([batch, 4]);
    }
    await session.release();
  });

  test('consecutive conv/pool layers share one NCHW section: one Transpose in, one out', () => {
    const model = seq([8, 8, 1], [
      tf.layers.conv2d({ filters: 2, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 2, kernelSize: 1 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2 }),
    ]);
    const { opTypes } = exportLayersModel(model);
    expect(opTypes.filter((op) => op === 'Transpose')).toHaveLength(2);
    expect(opTypes).toEqual(['Transpose', 'Conv', 'Relu', 'MaxPool', 'Conv', 'Transpose', 'Flatten', 'MatMul', 'Add']);
  });

  test.each([
    // size, kernel, stride, dilation -> [begin, end]  (TF puts the odd pixel at the end)
    [7, 3, 1, 1, [1, 1]],
    [7, 3, 2, 1, [1, 1]],
    [8, 3, 2, 1, [0, 1]],
    [8, 5, 2, 1, [1, 2]],
    [9, 3, 2, 2, [2, 2]],
    [5, 1, 2, 1, [0, 0]],
  ])('samePads(%i, k%i, s%i, d%i) = %j', (size, kernel, stride, dilation, pads) => {
    expect(samePads(size, kernel, stride, dilation)).toEqual(pads);
  });
});

describe('parity with TF.js, per layer type (max |diff| <= 1e-4)', () => {
  const convCases: Array<[number, number, 'same' | 'valid', number[]]> = [];
  for (const kernel of [1, 3, 5]) for (const stride of [1, 2]) for (const padding of ['same', 'valid'] as const) for (const shape of [[7, 9, 3], [8, 8, 2]]) convCases.push([kernel, stride, padding, shape]);

  test.each(convCases)('conv2d kernel %i stride %i padding %s on %j', async (kernel, stride, padding, shape) => {
    const model = seq(shape, [tf.layers.conv2d({ filters: 4, kernelSize: kernel, strides: stride, padding, ...randomBias })]);
    const result = await parity(model);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    expect(result.onnxShape).toEqual(result.tfjsShape);
  });

  test.each([
    ['non-square kernel and strides', { filters: 3, kernelSize: [3, 2] as [number, number], strides: [2, 1] as [number, number], padding: 'same' as const }],
    ['dilation 2', { filters: 3, kernelSize: 3, dilationRate: 2, padding: 'same' as const }],
    ['no bias', { filters: 5, kernelSize: 3, useBias: false }],
  ])('conv2d with %s', async (_name, config) => {
    const result = await parity(seq([9, 7, 2], [tf.layers.conv2d({ ...randomBias, ...config })]));
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
  });

  const poolCases: Array<['max' | 'average', number, number | undefined, 'same' | 'valid', number[]]> = [];
  for (const kind of ['max', 'average'] as const)
    for (const [pool, stride] of [[2, undefined], [3, 1], [3, 2], [2, 1]] as Array<[number, number | undefined]>)
      for (const padding of ['same', 'valid'] as const) poolCases.push([kind, pool, stride, padding, padding === 'same' ? [7, 9, 3] : [8, 7, 2]]);

  test.each(poolCases)('%sPooling2d pool %i strides %s padding %s on %j', async (kind, pool, stride, padding, shape) => {
    const config = { poolSize: pool, strides: stride, padding };
    const layer = kind === 'max' ? tf.layers.maxPooling2d(config) : tf.layers.averagePooling2d(config);
    const result = await parity(seq(shape, [layer]));
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    expect(result.onnxShape).toEqual(result.tfjsShape);
  });

  test('flatten after conv orders features like TF.js (h, w, c), so the next dense sees the same vector', async () => {
    // A non-symmetric input and several channels: a c-h-w flatten would differ.
    const model = seq([5, 4, 3], [tf.layers.conv2d({ filters: 3, kernelSize: 2, ...randomBias }), tf.layers.flatten(), tf.layers.dense({ units: 7, ...randomBias })]);
    expect((await parity(model)).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    // And flatten as the model's output (the raw feature order is compared directly)
    expect((await parity(seq([5, 4, 3], [tf.layers.conv2d({ filters: 3, kernelSize: 2 }), tf.layers.flatten()]))).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
  });

  test('dense MLP (784-128-10 shape, smaller) with relu and softmax', async () => {
    const model = seq([64], [tf.layers.dense({ units: 32, activation: 'relu', ...randomBias }), tf.layers.dense({ units: 10, activation: 'softmax', ...randomBias })]);
    const result = await parity(model, 100);
    expect(result.rows).toBe(100);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
  });

  test('dense without bias, and dense on a 4-d input (applies to the channel axis)', async () => {
    expect((await parity(seq([6], [tf.layers.dense({ units: 3, useBias: false })]))).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    const model = seq([6, 5, 2], [tf.layers.conv2d({ filters: 3, kernelSize: 3 }), tf.layers.dense({ units: 4, activation: 'relu', ...randomBias })]);
    expect((await parity(model)).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
  });

  test('dropout is the identity at inference (no node)', async () => {
    const model = seq([6], [tf.layers.dense({ units: 5, ...randomBias }), tf.layers.dropout({ rate: 0.5 }), tf.layers.dense({ units: 2 })]);
    const result = await parity(model);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    expect(result.exported.opTypes).toEqual(['MatMul', 'Add', 'MatMul', 'Add']);
    // A model that ends in dropout still names its output "output".
    expect((await parity(seq([4], [tf.layers.dropout({ rate: 0.3 })]))).maxAbsDiff).toBe(0);
  });

  test.each([
    ['after a conv (NCHW section)', () => [tf.layers.conv2d({ filters: 4, kernelSize: 3, ...randomBias }), tf.layers.batchNormalization(randomStats)], [7, 6, 2]],
    ['on the NHWC input', () => [tf.layers.batchNormalization({ ...randomStats, epsilon: 0.01 })], [5, 5, 3]],
    ['after a dense layer', () => [tf.layers.dense({ units: 6 }), tf.layers.batchNormalization(randomStats)], [4]],
    ['without scale and center', () => [tf.layers.batchNormalization({ ...randomStats, scale: false, center: false })], [5]],
  ])('batchNormalization %s', async (_name, layers, shape) => {
    expect((await parity(seq(shape as number[], (layers as () => tf.layers.Layer[])()))).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
  });

  test.each([
    ['globalAveragePooling2d after conv', () => [tf.layers.conv2d({ filters: 4, kernelSize: 3 }), tf.layers.globalAveragePooling2d({})]],
    ['globalAveragePooling2d on the input', () => [tf.layers.globalAveragePooling2d({})]],
    ['globalMaxPooling2d after conv', () => [tf.layers.conv2d({ filters: 4, kernelSize: 3 }), tf.layers.globalMaxPooling2d({})]],
  ])('%s', async (_name, layers) => {
    const result = await parity(seq([7, 5, 3], layers()));
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    expect(result.tfjsShape.length).toBe(2);
  });

  describe.each(SUPPORTED_ACTIVATIONS)('activation %s', (name) => {
    // TF.js's ActivationIdentifier type omits some names its registry has (gelu, gelu_new, mish).
    const activation = name as Parameters<typeof tf.layers.activation>[0]['activation'];
    test('on a dense layer', async () => {
      const model = seq([5], [tf.layers.dense({ units: 6, activation, ...randomBias })]);
      expect((await parity(model, 20)).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    });
    test('on a conv2d layer (applied in NCHW; softmax stays on the channel axis)', async () => {
      const model = seq([5, 6, 2], [tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation, ...randomBias })]);
      expect((await parity(model)).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    });
    test('as an activation layer', async () => {
      const model = seq([4, 3, 5], [tf.layers.activation({ activation })]);
      expect((await parity(model)).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    });
  });

  test.each([
    ['reLU with maxValue', () => tf.layers.reLU({ maxValue: 1.5 })],
    ['reLU', () => tf.layers.reLU({})],
    ['leakyReLU', () => tf.layers.leakyReLU({ alpha: 0.1 })],
    ['elu layer', () => tf.layers.elu({})],
    ['softmax layer on the last axis', () => tf.layers.softmax({ axis: -1 })],
    ['reshape', () => tf.layers.reshape({ targetShape: [6, -1] })],
    ['zeroPadding2d', () => tf.layers.zeroPadding2d({ padding: [[1, 2], [0, 1]] })],
  ])('%s after a conv', async (_name, layer) => {
    const model = seq([6, 5, 2], [tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', ...randomBias }), layer()]);
    expect((await parity(model)).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
  });

  test('softmax layer with its default axis (1) on a flat input', async () => {
    expect((await parity(seq([5], [tf.layers.dense({ units: 4, ...randomBias }), tf.layers.softmax({})]))).maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
  });
});

describe('parity of whole networks', () => {
  test('the seed network (conv2d 32 3x3 relu, maxPooling 2, flatten, dense 10 softmax) on 100 rows of 28x28x1', async () => {
    const model = buildModel(tf, {
      inputShape: [28, 28, 1],
      layers: [
        { type: 'conv2d', filters: 32, kernelSize: 3, activation: 'relu' },
        { type: 'maxPooling2d', poolSize: 2 },
        { type: 'flatten' },
        { type: 'dense', units: 10, activation: 'softmax' },
      ],
      seed: 1,
    });
    const result = await parity(model, 100);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    expect(result.onnxShape).toEqual([100, 10]);
  });

  test('every manifest layer type in one network built by buildModel, saved and reloaded as TF.js JSON', async () => {
    const built = buildModel(tf, {
      inputShape: [12, 11, 3],
      layers: [
        { type: 'conv2d', filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'elu' },
        { type: 'batchNormalization' },
        { type: 'maxPooling2d', poolSize: 2, padding: 'same' },
        { type: 'conv2d', filters: 5, kernelSize: 1, activation: 'selu' },
        { type: 'averagePooling2d', poolSize: 2, strides: 1 },
        { type: 'activation', activation: 'relu6' },
        { type: 'dropout', rate: 0.2 },
        { type: 'globalAveragePooling2d' },
        { type: 'dense', units: 8, activation: 'softplus' },
        { type: 'dense', units: 3, activation: 'softmax' },
      ],
      seed: 2,
    });
    // Round trip through the saved format, as the Export step loads it
    let saved: tf.io.ModelArtifacts | undefined;
    await built.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const model = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    const result = await parity(model, 100);
    expect(result.maxAbsDiff).toBeLessThanOrEqual(TOLERANCE);
    expect(result.exported.opTypes).toEqual(expect.arrayContaining(['Conv', 'MaxPool', 'AveragePool', 'ReduceMean', 'Clip', 'Elu', 'Selu', 'Softplus', 'Softmax']));
  });
});

describe('unsupported models fail with UnsupportedLayerError naming the layer', () => {
  test('an LSTM layer: class, name and index', () => {
    const model = seq([5, 3], [tf.layers.lstm({ units: 4, name: 'my_lstm' }), tf.layers.dense({ units: 2 })]);
    expect(() => exportLayersModel(model)).toThrow(UnsupportedLayerError);
    expect(() => exportLayersModel(model)).toThrow(/Layer 1 "my_lstm" \(LSTM\)/);
  });

  test('a conv1d layer', () => {
    const model = seq([10, 2], [tf.layers.conv1d({ filters: 3, kernelSize: 3, name: 'c1' })]);
    expect(() => exportLayersModel(model)).toThrow(/Layer 1 "c1" \(Conv1D\) cannot be exported to ONNX/);
  });

  test('a channels-first conv2d', () => {
    const model = seq([2, 6, 6], [tf.layers.conv2d({ filters: 3, kernelSize: 3, dataFormat: 'channelsFirst', name: 'cf' })]);
    expect(() => exportLayersModel(model)).toThrow(/"cf" \(Conv2D\).*dataFormat "channelsFirst"/);
  });

  test('a branching functional model', () => {
    const input = tf.input({ shape: [4] });
    const a = tf.layers.dense({ units: 3, name: 'a' }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 3, name: 'b' }).apply(input) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'sum' }).apply([a, b]) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: sum });
    expect(() => exportLayersModel(model)).toThrow(UnsupportedLayerError);
    expect(() => exportLayersModel(model)).toThrow(/not fed by exactly the previous layer|"sum" \(Add\)/);
  });
});
