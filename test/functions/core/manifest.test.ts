import { ManifestError } from '../../../functions/core/errors';
import { MANIFEST_DEFAULTS, parseManifest } from '../../../functions/core/manifest';
import { mnistManifest } from '../../support/mnist-csv';

const minimal = { name: 'iris', task: 'classification', format: 'csv', label: 'species' };

function problems(input: unknown, options = {}): string {
  try {
    parseManifest(input, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestError);
    return (error as Error).message;
  }
  throw new Error('parseManifest accepted an invalid manifest');
}

describe('parseManifest', () => {
  test('resolves every default', () => {
    const m = parseManifest(minimal);
    expect(m).toEqual({
      ...minimal,
      features: {},
      split: { validation: 0.1, test: 0.2, seed: 42 },
      training: { epochs: 5, batchSize: 64, learningRate: 0.001, optimizer: 'adam', seed: 42 },
      promotion: { metric: 'accuracy', minImprovement: 0, alias: 'production' },
    });
    expect(parseManifest({ ...minimal, task: 'regression' }).promotion.metric).toBe(MANIFEST_DEFAULTS.promotion.regression.metric);
  });

  test('keeps what the manifest says over the defaults', () => {
    const m = parseManifest({
      ...minimal,
      split: { test: 0.25, seed: 7 },
      training: { epochs: 5, batchSize: 64, earlyStopping: { patience: 2 } },
      promotion: { metric: 'f1Macro', minimum: 0.8 },
      model: [{ type: 'conv2d', filters: 8, kernelSize: [3, 3], activation: 'relu' }, { type: 'flatten' }, { type: 'dense', units: 3, activation: 'softmax' }],
    });
    expect(m.split).toEqual({ validation: 0.1, test: 0.25, seed: 7 });
    expect(m.training).toEqual({ epochs: 5, batchSize: 64, learningRate: 0.001, optimizer: 'adam', seed: 7, earlyStopping: { patience: 2 } });
    expect(m.promotion).toEqual({ metric: 'f1Macro', minimum: 0.8, minImprovement: 0, alias: 'production' });
    expect(m.model).toHaveLength(3);
  });

  test('accepts JSON text (with a BOM) and takes the dataset name when "name" is absent', () => {
    const { name: _omit, ...rest } = minimal;
    expect(parseManifest('\uFEFF' + JSON.stringify(rest), { defaultName: 'flowers' }).name).toBe('flowers');
  });

  test('the mnist helper manifest is valid', () => {
    expect(parseManifest(mnistManifest('jsonl')).features).toEqual({ field: 'pixels', shape: [28, 28, 1] });
  });

  test('a misspelt task names field, expectation and value', () => {
    expect(problems({ ...minimal, task: 'clasification' })).toBe(
      'dataset.json is invalid: task: expected "classification" or "regression", received "clasification"',
    );
  });

  test('lists every problem at once', () => {
    const message = problems(
      { name: 'Iris!', task: 'classification', format: 'xls', labl: 'y', model: [{ type: 'conv3d' }, { type: 'dense', units: 0 }], training: { epochs: '5' } },
      { source: 'datasets/iris/dataset.json' },
    );
    expect(message).toMatch(/^datasets\/iris\/dataset\.json is invalid: 7 problems:\n/);
    expect(message).toContain('  - name: expected lowercase letters, digits and dashes (1-63 characters, no dash at either end), received "Iris!"');
    expect(message).toContain('  - format: expected "csv" or "jsonl", received "xls"');
    expect(message).toContain('  - label: expected a string, received nothing (the field is missing)');
    expect(message).toContain('  - model[0].type: expected one of "dense", "conv2d", "maxPooling2d", "averagePooling2d", "flatten", "dropout", "batchNormalization", "globalAveragePooling2d", "activation", received "conv3d"');
    expect(message).toContain('  - model[1].units: expected a number > 0, received 0');
    expect(message).toContain('  - training.epochs: expected a number, received "5"');
    expect(message).toContain('  - (top level): unknown field "labl" (expected one of name, task, format, label, features, classes, model, training, split, promotion)');
  });

  test('checks across fields: split sum, metric for the task, columns vs shape, field only for JSON Lines', () => {
    const message = problems({
      ...minimal,
      features: { columns: ['a', 'b', 'species'], shape: [2, 2], field: 'px' },
      split: { validation: 0.5, test: 0.5 },
      promotion: { metric: 'mse' },
    });
    expect(message).toContain('split: expected validation + test < 1 (the rest trains), received validation 0.5 + test 0.5 = 1');
    expect(message).toContain('promotion.metric: expected one of "accuracy", "f1Macro", "precisionMacro", "recallMacro", "loss" for task "classification", received "mse"');
    expect(message).toContain('features.columns[2]: expected a column other than the label "species", received "species"');
    expect(message).toContain('features.shape: expected dimensions whose product equals the 3 columns, received [2,2] (product 4)');
    expect(message).toContain('features.field: expected only with format "jsonl"');
    expect(message).toContain('features: expected either "columns" or "field", received both');
  });

  test('a duplicate class and a single class', () => {
    expect(problems({ ...minimal, classes: ['a', 'a'] })).toContain('classes[1]: expected each class once, received "a" again');
    expect(problems({ ...minimal, classes: ['a'] })).toContain('classes: expected a list of >= 2 items, received ["a"]');
  });

  test('no name and no usable dataset name', () => {
    const { name: _omit, ...rest } = minimal;
    expect(problems(rest)).toContain('name: expected the model name');
    expect(problems(rest, { defaultName: 'My Data' })).toContain('the dataset name "My Data" is not a valid model name');
  });

  test('not JSON, or not an object', () => {
    expect(problems('{task:')).toMatch(/^dataset\.json is not valid JSON: /);
    expect(problems('[1]')).toBe('dataset.json: expected a JSON object, received [1]');
  });
});
