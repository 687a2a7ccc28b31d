import * as tf from '@tensorflow/tfjs';
import { ParityError } from '../../../../functions/core/errors';
import { checkParity, DEFAULT_TOLERANCE, encodeModel, exportLayersModel, maxAbsDiff, measureParity, type ModelProto } from '../../../../functions/core/onnx';

function rows(n: number, width: number): Float32Array {
  return Float32Array.from({ length: n * width }, (_, i) => Math.sin(i * 0.37) * 2);
}

/** The same model with one value of one initializer changed by `delta`. */
function corrupt(model: ModelProto, initializer: string, delta: number): Uint8Array {
  const initializers = model.graph.initializers.map((t) => {
    if (t.name !== initializer) return t;
    const raw = t.rawData.slice();
    const view = new DataView(raw.buffer);
    view.setFloat32(0, view.getFloat32(0, true) + delta, true);
    return { ...t, rawData: raw };
  });
  return encodeModel({ ...model, graph: { ...model.graph, initializers } });
}

describe('parity', () => {
  let model: tf.LayersModel;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [8], units: 16, activation: 'tanh', biasInitializer: 'randomNormal' }),
        tf.layers.dense({ units: 1, name: 'head' }),
      ],
    });
  });

  test('an exact export passes on 150 rows, in batches smaller than the row count', async () => {
    const { bytes } = exportLayersModel(model);
    const result = await checkParity(tf, model, bytes, rows(150, 8), [150, 8], { batchSize: 64 });
    expect(result).toEqual({ rows: 150, maxAbsDiff: expect.any(Number), tolerance: DEFAULT_TOLERANCE, passed: true });
    expect(result.maxAbsDiff).toBeLessThanOrEqual(DEFAULT_TOLERANCE);
  });

  test('a corrupted weight in the ONNX model throws ParityError stating the difference and the tolerance', async () => {
    // Given the export with the head's bias moved by 0.01
    const exported = exportLayersModel(model);
    const bias = exported.model.graph.initializers.find((t) => t.name.startsWith('head/bias'))!.name;
    const bad = corrupt(exported.model, bias, 0.01);
    // When / Then
    const measured = await measureParity(tf, model, bad, rows(120, 8), [120, 8]);
    expect(measured.passed).toBe(false);
    expect(measured.maxAbsDiff).toBeCloseTo(0.01, 4);
    await expect(checkParity(tf, model, bad, rows(120, 8), [120, 8])).rejects.toThrow(ParityError);
    await expect(checkParity(tf, model, bad, rows(120, 8), [120, 8])).rejects.toThrow(/differ by up to 0\.0(099|100)\d* on 120 rows; the tolerance is 0\.0001/);
  });

  test('the tolerance is a parameter: a tiny corruption passes a loose bound and fails a strict one', async () => {
    const exported = exportLayersModel(model);
    const bias = exported.model.graph.initializers.find((t) => t.name.startsWith('head/bias'))!.name;
    const bad = corrupt(exported.model, bias, 5e-4);
    await expect(checkParity(tf, model, bad, rows(100, 8), [100, 8], { tolerance: 1e-3 })).resolves.toMatchObject({ passed: true });
    await expect(checkParity(tf, model, bad, rows(100, 8), [100, 8], { tolerance: 1e-4 })).rejects.toThrow(ParityError);
  });

  test('maxAbsDiff counts a one-sided NaN or a length mismatch as infinite', () => {
    expect(maxAbsDiff(Float32Array.from([1, 2]), Float32Array.from([1, 2.5]))).toBe(0.5);
    expect(maxAbsDiff(Float32Array.from([NaN]), Float32Array.from([NaN]))).toBe(0);
    expect(maxAbsDiff(Float32Array.from([NaN]), Float32Array.from([0]))).toBe(Infinity);
    expect(maxAbsDiff(Float32Array.from([1]), Float32Array.from([1, 2]))).toBe(Infinity);
  });
});
