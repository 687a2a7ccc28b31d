import { ManifestError } from '../../../functions/core/errors';
import { epochOrder, resolveTrainingOptions, shouldStopEarly, type EarlyStopping, type EpochRecord } from '../../../functions/train/options';

const base = { hasValidation: true, fallbackSeed: 42 };

describe('resolveTrainingOptions', () => {
  test('defaults: adam 1e-3, batch 64, 5 epochs, sparse crossentropy + acc, the preprocessing seed', () => {
    expect(resolveTrainingOptions(undefined, 'classification', base)).toEqual({
      epochs: 5,
      batchSize: 64,
      learningRate: 1e-3,
      optimizer: 'adam',
      loss: 'sparseCategoricalCrossentropy',
      metrics: ['acc'],
      earlyStopping: undefined,
      seed: 42,
    });
    const regression = resolveTrainingOptions({ loss: 'mse' }, 'regression', base);
    expect([regression.loss, regression.metrics]).toEqual(['meanSquaredError', ['mae']]);
  });

  test('the manifest overrides every default', () => {
    const o = resolveTrainingOptions(
      { epochs: 3, batchSize: 16, learningRate: 0.01, optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics: ['accuracy'], seed: 9, earlyStopping: { patience: 2, monitor: 'val_acc' } },
      'classification',
      base,
    );
    expect(o).toEqual({
      epochs: 3,
      batchSize: 16,
      learningRate: 0.01,
      optimizer: 'sgd',
      loss: 'categoricalCrossentropy',
      metrics: ['accuracy'],
      earlyStopping: { patience: 2, monitor: 'val_acc', minDelta: 0, mode: 'max' },
      seed: 9,
    });
  });

  test('early stopping monitors val_loss with a validation split, else loss', () => {
    expect(resolveTrainingOptions({ earlyStopping: { patience: 1 } }, 'regression', base).earlyStopping?.monitor).toBe('val_loss');
    expect(resolveTrainingOptions({ earlyStopping: { patience: 1 } }, 'regression', { ...base, hasValidation: false }).earlyStopping).toEqual({
      patience: 1,
      monitor: 'loss',
      minDelta: 0,
      mode: 'min',
    });
  });

  test.each([
    [{ epochs: 0 }, 'classification', 'training.epochs must be an integer of at least 1. Received 0.'],
    [{ batchSize: 2.5 }, 'classification', 'training.batchSize must be an integer of at least 1. Received 2.5.'],
    [{ learningRate: -1 }, 'classification', 'training.learningRate must be a positive number. Received -1.'],
    [{ optimizer: 'adagrad' }, 'classification', 'training.optimizer must be one of adam, sgd, rmsprop. Received "adagrad".'],
    [{ loss: 'meanSquaredError' }, 'classification', 'training.loss must be one of sparseCategoricalCrossentropy, categoricalCrossentropy for classification. Received "meanSquaredError".'],
    [{ metrics: ['acc'] }, 'regression', 'training.metrics[0] must be one of mae, mse for regression. Received "acc".'],
    [{ earlyStopping: { patience: 2, monitor: 'val_f1' } }, 'classification', 'training.earlyStopping.monitor must be one of loss, acc, val_loss, val_acc. Received "val_f1".'],
  ] as const)('%j for %s is rejected', (spec, task, message) => {
    expect(() => resolveTrainingOptions(spec as never, task, base)).toThrow(new ManifestError(message));
  });
});

describe('shouldStopEarly', () => {
  const epochs = (losses: number[]): EpochRecord[] => losses.map((v, i) => ({ epoch: i + 1, loss: v, metrics: { val_loss: v, val_acc: 1 - v }, samplesPerSecond: 1 }));
  const rule: EarlyStopping = { patience: 2, monitor: 'val_loss', minDelta: 0, mode: 'min' };

  test('stops once the monitored value has not improved for `patience` epochs', () => {
    expect(shouldStopEarly(epochs([0.5, 0.4, 0.41, 0.42]), rule)).toBe(true);
  });
  test('keeps going while it improves, or before patience runs out', () => {
    expect(shouldStopEarly(epochs([0.5, 0.4, 0.3, 0.2]), rule)).toBe(false);
    expect(shouldStopEarly(epochs([0.5, 0.4, 0.41]), rule)).toBe(false);
    expect(shouldStopEarly(epochs([0.5, 0.6, 0.7]), undefined)).toBe(false);
  });
  test('an improvement smaller than minDelta does not count; max mode for accuracy', () => {
    expect(shouldStopEarly(epochs([0.5, 0.49, 0.48]), { ...rule, minDelta: 0.05 })).toBe(true);
    expect(shouldStopEarly(epochs([0.5, 0.4, 0.3]), { ...rule, monitor: 'val_acc', mode: 'max' })).toBe(false);
    expect(shouldStopEarly(epochs([0.3, 0.4, 0.5]), { ...rule, monitor: 'val_acc', mode: 'max' })).toBe(true);
  });
});

describe('epochOrder', () => {
  test('is a permutation that depends only on (seed, epoch)', () => {
    const a = epochOrder(100, 7, 3);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(epochOrder(100, 7, 3))).toEqual(Array.from(a));
    expect(Array.from(epochOrder(100, 7, 4))).not.toEqual(Array.from(a));
    expect(Array.from(epochOrder(100, 8, 3))).not.toEqual(Array.from(a));
  });
});
