import { classificationMetrics, regressionMetrics, scalarMetrics } from '../../../functions/core/metrics';
import { DataError } from '../../../functions/core/errors';

/** One-hot-ish probabilities for predicted classes. */
function probsFor(predicted: number[], k: number, confidence = 0.9): Float32Array {
  const p = new Float32Array(predicted.length * k).fill((1 - confidence) / (k - 1));
  predicted.forEach((c, r) => (p[r * k + c] = confidence));
  return p;
}

describe('classificationMetrics', () => {
  test('accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix', () => {
    // Given actual [a a a b b c] predicted [a a b b c c]
    const labels = Int32Array.from([0, 0, 0, 1, 1, 2]);
    const m = classificationMetrics(labels, probsFor([0, 0, 1, 1, 2, 2], 3), ['a', 'b', 'c']);
    // Then
    expect(m.accuracy).toBeCloseTo(4 / 6, 12);
    expect(m.confusion).toEqual([
      [2, 1, 0],
      [0, 1, 1],
      [0, 0, 1],
    ]);
    expect(m.perClass.map((c) => c.precision)).toEqual([1, 0.5, 0.5]);
    expect(m.perClass.map((c) => c.recall)).toEqual([2 / 3, 0.5, 1]);
    const f1 = [0.8, 0.5, 2 / 3];
    m.perClass.forEach((c, i) => expect(c.f1).toBeCloseTo(f1[i], 12));
    expect(m.f1Macro).toBeCloseTo((0.8 + 0.5 + 2 / 3) / 3, 12);
    expect(m.perClass.map((c) => c.support)).toEqual([3, 2, 1]);
    expect(m.loss).toBeCloseTo(-Math.log(0.9) * (4 / 6) - Math.log(0.05) * (2 / 6), 5);
  });

  test('a class absent from labels and predictions does not dilute the macro average', () => {
    const m = classificationMetrics(Int32Array.from([0, 1]), probsFor([0, 1], 3), ['a', 'b', 'c']);
    expect(m.f1Macro).toBe(1);
    expect(m.perClass[2]).toEqual({ className: 'c', precision: 0, recall: 0, f1: 0, support: 0 });
  });

  test('an output of the wrong size is a DataError naming both sizes', () => {
    expect(() => classificationMetrics(Int32Array.from([0, 1]), new Float32Array(5), ['a', 'b'])).toThrow(DataError);
    expect(() => classificationMetrics(Int32Array.from([0, 1]), new Float32Array(5), ['a', 'b'])).toThrow('Model output has 5 values; expected 2 rows x 2 classes = 4.');
  });
});

describe('regressionMetrics', () => {
  test('MSE, RMSE, MAE and R²', () => {
    const m = regressionMetrics(Float32Array.from([1, 2, 3, 4]), Float32Array.from([1, 2, 4, 2]));
    expect(m.mse).toBeCloseTo(5 / 4, 12);
    expect(m.rmse).toBeCloseTo(Math.sqrt(5 / 4), 12);
    expect(m.mae).toBeCloseTo(3 / 4, 12);
    expect(m.r2).toBeCloseTo(1 - 5 / 5, 12);
    expect(scalarMetrics(m)).toEqual({ mse: m.mse, rmse: m.rmse, mae: m.mae, r2: m.r2, loss: m.mse });
  });

  test('R² of a perfect fit is 1, of the mean is 0', () => {
    expect(regressionMetrics(Float32Array.from([1, 2, 3]), Float32Array.from([1, 2, 3])).r2).toBe(1);
    expect(regressionMetrics(Float32Array.from([1, 2, 3]), Float32Array.from([2, 2, 2])).r2).toBeCloseTo(0, 12);
  });
});
