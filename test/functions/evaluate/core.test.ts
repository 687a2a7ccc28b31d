import { DataError } from '../../../functions/core/errors';
import type { RunState } from '../../../functions/core/contracts';
import { modelKeys, runKeys } from '../../../functions/core/layout';
import { DataType, encodeModel, floatTensor, type NodeProto } from '../../../functions/core/onnx';
import { loadSplit, loadStats, type PreparedStats } from '../../../functions/core/prepared';
import { getJson, getText, putBytes, putJson } from '../../../functions/core/s3';
import { evaluate, type EvaluationRecord } from '../../../functions/evaluate/core';
import { preprocess } from '../../../functions/preprocess/core';
import { DATA_BUCKET, MODEL_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

let fx: S3Fixture;
beforeAll(async () => {
  fx = await localS3Fixture();
});
afterAll(async () => fx.close());

/**
 * A hand-built ONNX model `output = f(input · W + B)` over normalised input [batch, features]:
 * f is Softmax (classification) or identity (regression). Choosing W = diag(std)·A and
 * B = mean·A applies A to the raw, un-normalised features.
 */
function linearOnnx(stats: PreparedStats, a: number[][], bias: number[], softmax: boolean): Uint8Array {
  const features = stats.normalization.mean.length;
  const outputs = a[0].length;
  const w = new Float32Array(features * outputs);
  const b = new Float32Array(outputs);
  for (let f = 0; f < features; f++) {
    for (let o = 0; o < outputs; o++) {
      w[f * outputs + o] = stats.normalization.std[f] * a[f][o];
      b[o] += stats.normalization.mean[f] * a[f][o];
    }
  }
  bias.forEach((v, o) => (b[o] += v));
  const nodes: NodeProto[] = [
    { name: 'mm', opType: 'MatMul', inputs: ['input', 'W'], outputs: ['mm'], attributes: {} },
    { name: 'add', opType: 'Add', inputs: ['mm', 'B'], outputs: [softmax ? 'logits' : 'output'], attributes: {} },
    ...(softmax ? [{ name: 'softmax', opType: 'Softmax', inputs: ['logits'], outputs: ['output'], attributes: { axis: { type: 'int' as const, value: -1 } } }] : []),
  ];
  return encodeModel({
    irVersion: 7,
    opsetImports: [{ domain: '', version: 13 }],
    producerName: 'evaluate-test',
    producerVersion: '0',
    graph: {
      name: 'linear',
      nodes,
      initializers: [floatTensor('W', [features, outputs], w), floatTensor('B', [outputs], b)],
      inputs: [{ name: 'input', elemType: DataType.FLOAT, shape: ['batch', features] }],
      outputs: [{ name: 'output', elemType: DataType.FLOAT, shape: ['batch', outputs] }],
    },
  });
}

let counter = 0;
async function prepared(manifest: Record<string, unknown>, csv: string): Promise<RunState> {
  counter += 1;
  const dataset = `eval${counter}`;
  await putBytes(fx.s3, { bucket: DATA_BUCKET, key: `datasets/${dataset}/data/d.csv` }, csv);
  const manifestKey = `datasets/${dataset}/dataset.json`;
  const { etag } = await putJson(fx.s3, { bucket: DATA_BUCKET, key: manifestKey }, { name: dataset, ...manifest });
  const input = { runId: `run-${dataset}`, dataset, bucket: DATA_BUCKET, manifestKey, manifestETag: etag };
  const result = await preprocess(fx.s3, input);
  return { ...input, preprocess: result };
}

/** 3 classes; the label is the index of the largest feature except for every 7th row, labelled one class off. */
function argmaxCsv(rows = 120): string {
  const lines = ['f0,f1,f2,label'];
  for (let i = 0; i < rows; i++) {
    const winner = i % 3;
    const f = [((i * 7) % 5) / 10, ((i * 11) % 5) / 10, ((i * 13) % 5) / 10];
    f[winner] = 1 + (i % 4) / 10;
    const label = i % 7 === 0 ? (winner + 1) % 3 : winner;
    lines.push(`${f.join(',')},${['cat', 'dog', '<fox&>'][label]}`);
  }
  return lines.join('\n') + '\n';
}

const IDENTITY_X10 = [
  [10, 0, 0],
  [0, 10, 0],
  [0, 0, 10],
];

async function withOnnx(state: RunState, onnx: Uint8Array): Promise<RunState> {
  await putBytes(fx.s3, { bucket: DATA_BUCKET, key: runKeys.onnx(state.runId) }, onnx);
  return {
    ...state,
    export: { onnxKey: runKeys.onnx(state.runId), tfjsPrefix: runKeys.model(state.runId), opset: 13, parity: { rows: 100, maxAbsDiff: 2e-6, tolerance: 1e-4, passed: true } },
  };
}

/** Accuracy computed here from the raw features, independently of the code under test. */
async function expectedAccuracy(state: RunState): Promise<number> {
  const stats = await loadStats(fx.s3, DATA_BUCKET, state.runId);
  const { x, y, rows } = await loadSplit(fx.s3, DATA_BUCKET, stats, 'test');
  // classNames sort by code point: "<fox&>" < "cat" < "dog"; raw feature k is the score of the k-th CSV class.
  const csvOrder = ['cat', 'dog', '<fox&>'];
  let correct = 0;
  for (let r = 0; r < rows; r++) {
    const raw = [0, 1, 2].map((f) => x[r * 3 + f] * stats.normalization.std[f] + stats.normalization.mean[f]);
    const predicted = csvOrder[raw.indexOf(Math.max(...raw))];
    if (predicted === stats.classNames![y[r]]) correct += 1;
  }
  return correct / rows;
}

/** The ONNX model reorders outputs to the sorted class order. */
function classifierFor(stats: PreparedStats): number[][] {
  const csvOrder = ['cat', 'dog', '<fox&>'];
  return IDENTITY_X10.map((row) => stats.classNames!.map((c) => row[csvOrder.indexOf(c)]));
}

describe('evaluate', () => {
  test('classification: metrics from ONNX on the test split, no champion -> promoted, evaluation.json and report.html written', async () => {
    // Given a prepared run, its ONNX model and a training history
    const base = await prepared({ task: 'classification', format: 'csv', label: 'label' }, argmaxCsv());
    const stats = await loadStats(fx.s3, DATA_BUCKET, base.runId);
    const state = await withOnnx(base, linearOnnx(stats, classifierFor(stats), [0, 0, 0], true));
    const epochs = [1, 2, 3].map((epoch) => ({ epoch, loss: 1 / epoch, metrics: { acc: 0.5 + epoch / 10, val_loss: 1.2 / epoch, val_acc: 0.45 + epoch / 10 }, samplesPerSecond: 1000 }));
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: runKeys.history(state.runId) }, { epochs, backend: 'cpu' });
    // When
    const result = await evaluate(fx.s3, state, { modelBucket: MODEL_BUCKET, now: new Date('2026-01-02T03:04:05Z') });
    // Then
    const accuracy = await expectedAccuracy(state);
    expect(accuracy).toBeGreaterThan(0.6);
    expect(accuracy).toBeLessThan(1);
    expect(result.metrics.accuracy).toBeCloseTo(accuracy, 10);
    expect(Object.keys(result.metrics).sort()).toEqual(['accuracy', 'f1Macro', 'loss', 'precisionMacro', 'recallMacro']);
    expect(result.promote).toBe(true);
    expect(result.champion).toBeUndefined();
    expect(result.reason).toMatch(/^No current version to beat; accuracy /);
    const record = (await getJson<EvaluationRecord>(fx.s3, { bucket: DATA_BUCKET, key: result.evaluationKey })).value;
    expect(record.testRows).toBe(stats.counts.test);
    expect(record.metrics).toEqual(result.metrics);
    expect(record.detail.task === 'classification' && record.detail.confusion.flat().reduce((a, b) => a + b, 0)).toBe(stats.counts.test);
    expect(record.rule).toEqual({ metric: 'accuracy', minImprovement: 0, alias: 'production' });

    const html = (await getText(fx.s3, { bucket: DATA_BUCKET, key: result.reportKey })).text;
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).not.toMatch(/<script|src="http|href="http/);
    for (const series of ['loss', 'val_loss', 'acc', 'val_acc']) expect(html).toMatch(new RegExp(`<path class="series" data-series="${series}" d="M[\\d.]+,[\\d.]+ L[\\d.]+,[\\d.]+ L[\\d.]+,[\\d.]+"`));
    expect(html).toContain(`<td>accuracy</td><td>${result.metrics.accuracy.toFixed(4)}</td>`);
    expect(html).toContain(`<td>f1Macro</td><td>${result.metrics.f1Macro.toFixed(4)}</td>`);
    expect(html).toContain('&lt;fox&amp;&gt;');
    expect(html).not.toContain('<fox&>');
    const confusion = record.detail.task === 'classification' ? record.detail.confusion : [];
    expect(html).toMatch(new RegExp(`data-actual="0" data-predicted="0"[^>]*>.*?</rect>\\s*<text[^>]*>${confusion[0][0]}</text>`, 's'));
    expect(html).toContain('2026-01-02T03:04:05.000Z');
  });

  test('champion/challenger: a better production version is kept, a worse one is replaced', async () => {
    const base = await prepared({ task: 'classification', format: 'csv', label: 'label', promotion: { metric: 'accuracy', minImprovement: 0.01 } }, argmaxCsv());
    const stats = await loadStats(fx.s3, DATA_BUCKET, base.runId);
    const state = await withOnnx(base, linearOnnx(stats, classifierFor(stats), [0, 0, 0], true));
    const accuracy = await expectedAccuracy(state);
    const model = stats.modelName;
    const setChampion = async (version: string, acc: number) => {
      await putJson(fx.s3, { bucket: MODEL_BUCKET, key: modelKeys.versionManifest(model, version) }, { metrics: { accuracy: acc, loss: 0.3 }, task: 'classification' });
      await putJson(fx.s3, { bucket: MODEL_BUCKET, key: modelKeys.alias(model, 'production') }, { model, alias: 'production', version, updatedAt: '2026-01-01T00:00:00Z' });
    };
    // Given production is better than the challenger
    await setChampion('4', accuracy + 0.005);
    const kept = await evaluate(fx.s3, state, { modelBucket: MODEL_BUCKET });
    expect(kept.promote).toBe(false);
    expect(kept.champion).toEqual({ version: '4', metrics: { accuracy: accuracy + 0.005, loss: 0.3 } });
    expect(kept.reason).toMatch(/for version 4: worse, the rule requires an improvement of at least 0\.01/);
    expect((await getText(fx.s3, { bucket: DATA_BUCKET, key: kept.reportKey })).text).toContain('<th>version 4 (production)</th>');
    // Given production is worse by more than the delta
    await setChampion('5', accuracy - 0.02);
    const replaced = await evaluate(fx.s3, state, { modelBucket: MODEL_BUCKET });
    expect(replaced.promote).toBe(true);
    expect(replaced.champion?.version).toBe('5');
  });

  test('regression: MSE/MAE/R² of a model that recovers the target exactly, and a minimum on mse', async () => {
    const lines = ['a,b,y', ...Array.from({ length: 60 }, (_, i) => `${i % 10},${(i * 3) % 7},${2 * (i % 10) + 3 * ((i * 3) % 7) + 1}`)];
    const base = await prepared({ task: 'regression', format: 'csv', label: 'y', promotion: { metric: 'mse', minimum: 0.001 } }, lines.join('\n'));
    const stats = await loadStats(fx.s3, DATA_BUCKET, base.runId);
    const exact = await withOnnx(base, linearOnnx(stats, [[2], [3]], [1], false));
    const good = await evaluate(fx.s3, exact, { modelBucket: MODEL_BUCKET });
    expect(good.metrics.mse).toBeLessThan(1e-8);
    expect(good.metrics.r2).toBeCloseTo(1, 6);
    expect(good.promote).toBe(true);
    // An offset of 0.5 on every prediction: mse 0.25, mae 0.5, above the minimum
    const off = await withOnnx(base, linearOnnx(stats, [[2], [3]], [1.5], false));
    const bad = await evaluate(fx.s3, off, { modelBucket: MODEL_BUCKET });
    expect(bad.metrics.mse).toBeCloseTo(0.25, 5);
    expect(bad.metrics.mae).toBeCloseTo(0.5, 5);
    expect(bad.promote).toBe(false);
    expect(bad.reason).toBe('mse 0.25 does not meet the maximum 0.001 (lower is better).');
  });

  test('a model whose output does not match the classes is a DataError', async () => {
    const base = await prepared({ task: 'classification', format: 'csv', label: 'label' }, argmaxCsv(60));
    const stats = await loadStats(fx.s3, DATA_BUCKET, base.runId);
    const state = await withOnnx(base, linearOnnx(stats, [[1, 0], [0, 1], [1, 1]], [0, 0], true));
    await expect(evaluate(fx.s3, state, { modelBucket: MODEL_BUCKET })).rejects.toThrow(DataError);
    await expect(evaluate(fx.s3, state, { modelBucket: MODEL_BUCKET })).rejects.toThrow(
      'The ONNX model outputs 2 values per row; the dataset has 3 classes (<fox&>, cat, dog).',
    );
  });
});
