import { randomBytes } from 'node:crypto';
import type { RunState } from '../../../functions/core/contracts';
import { rawAesKeyring } from '../../../functions/core/crypto';
import { NotFoundError } from '../../../functions/core/errors';
import { preparedKeys, runKeys } from '../../../functions/core/layout';
import { getAlias, listVersions, readArtifact, readManifest, type Registry } from '../../../functions/core/registry';
import { putBytes, putJson } from '../../../functions/core/s3';
import { ModelStore } from '../../../functions/inference/models';
import { createInferenceService } from '../../../functions/inference/service';
import { registerRun } from '../../../functions/register/register';
import { DATA_BUCKET, localS3Fixture, MODEL_BUCKET, type S3Fixture } from '../../support/local-s3';
import { irisLike, linearOnnx, IRIS_CLASSES, IRIS_NORMALIZATION } from '../inference/fixtures';

let fx: S3Fixture;
let reg: Registry;
const keyring = rawAesKeyring(randomBytes(32));

/** What Preprocess, Train, Export and Evaluate leave behind for one run. */
async function seedRun(runId: string, options: { seed?: number; alias?: string; promote?: boolean } = {}): Promise<{ state: RunState; onnx: Uint8Array }> {
  const onnx = linearOnnx(irisLike(options.seed ?? 1));
  const ref = (key: string) => ({ bucket: DATA_BUCKET, key });
  await putJson(fx.s3, ref(preparedKeys.stats(runId)), {
    task: 'classification',
    modelName: 'iris',
    label: 'species',
    inputShape: [4],
    featureNames: ['sl', 'sw', 'pl', 'pw'],
    classNames: IRIS_CLASSES,
    normalization: IRIS_NORMALIZATION,
    counts: { train: 100, validation: 20, test: 30 },
    shards: { train: [], validation: [], test: [] },
    sources: [{ key: 'datasets/iris/data/iris.csv', etag: '"abc123"' }],
    manifestHash: 'a'.repeat(64),
    seed: 42,
  });
  await putJson(fx.s3, ref(preparedKeys.manifest(runId)), {
    name: 'iris',
    task: 'classification',
    format: 'csv',
    label: 'species',
    ...(options.alias ? { promotion: { metric: 'accuracy', alias: options.alias } } : {}),
  });
  await putBytes(fx.s3, ref(runKeys.onnx(runId)), onnx);
  await putJson(fx.s3, ref(`${runKeys.model(runId)}model.json`), { format: 'layers-model', modelTopology: {}, weightsManifest: [] });
  await putBytes(fx.s3, ref(`${runKeys.model(runId)}weights.bin`), randomBytes(48));
  const state: RunState = {
    runId,
    dataset: 'iris',
    bucket: DATA_BUCKET,
    manifestKey: 'datasets/iris/dataset.json',
    manifestETag: '"m1"',
    preprocess: { modelName: 'iris', task: 'classification', preparedPrefix: preparedKeys.prefix(runId), statsKey: preparedKeys.stats(runId), inputShape: [4], classNames: IRIS_CLASSES, counts: { train: 100, validation: 20, test: 30 } },
    train: { jobId: 'job-1', status: 'SUCCEEDED' },
    export: { onnxKey: runKeys.onnx(runId), tfjsPrefix: runKeys.model(runId), opset: 13, parity: { rows: 30, maxAbsDiff: 2e-7, tolerance: 1e-4, passed: true } },
    evaluate: { metrics: { accuracy: 0.93, f1Macro: 0.92 }, promote: options.promote ?? true, reason: 'first model', evaluationKey: runKeys.evaluation(runId), reportKey: runKeys.report(runId) },
  };
  return { state, onnx };
}

const props = (state: RunState) => ({ s3: fx.s3, dataBucket: DATA_BUCKET, modelBucket: MODEL_BUCKET, keyring, state, codeVersion: '0.1.0-test', now: new Date('2026-12-04T12:00:00Z') });

beforeAll(async () => {
  fx = await localS3Fixture();
  reg = { s3: fx.s3, bucket: MODEL_BUCKET, keyring };
});
afterAll(async () => {
  await fx.close();
});

test('given a finished run, Register writes version 1 with a full manifest and points production at it', async () => {
  const { state, onnx } = await seedRun('iris-run-1');
  const result = await registerRun(props(state));
  expect(result).toEqual({ model: 'iris', version: '1', aliases: ['production'], manifestKey: 'models/iris/versions/1/manifest.json' });
  const manifest = await readManifest(reg, 'iris', '1');
  expect(manifest).toMatchObject({
    model: 'iris',
    version: '1',
    task: 'classification',
    input: { name: 'input', datatype: 'FP32', shape: [-1, 4] },
    output: { name: 'output', datatype: 'FP32', shape: [-1, 3] },
    normalization: IRIS_NORMALIZATION,
    classNames: IRIS_CLASSES,
    metrics: { accuracy: 0.93, f1Macro: 0.92 },
    parity: { passed: true },
    lineage: { dataset: 'iris', runId: 'iris-run-1', dataETags: [{ key: 'datasets/iris/data/iris.csv', etag: '"abc123"' }], manifestHash: 'a'.repeat(64), codeVersion: '0.1.0-test', time: '2026-12-04T12:00:00.000Z' },
  });
  expect(Object.keys(manifest.artifacts).sort()).toEqual(['model.onnx', 'tfjs/model.json', 'tfjs/weights.bin']);
  expect(manifest.artifacts['model.onnx']!.bytes).toBe(onnx.length);
  expect(await readArtifact(reg, manifest, 'model.onnx')).toEqual(onnx);
  expect((await getAlias(reg, 'iris', 'production'))!.record.version).toBe('1');
});

test('a retried Register of the same run adds no version and leaves the alias alone', async () => {
  const { state } = await seedRun('iris-run-1');
  const before = (await getAlias(reg, 'iris', 'production'))!.etag;
  const result = await registerRun(props(state));
  expect(result.version).toBe('1');
  expect(await listVersions(reg, 'iris')).toEqual(['1']);
  expect((await getAlias(reg, 'iris', 'production'))!.etag).toBe(before);
});

test('a run evaluated against a champion that has since been replaced is registered but not promoted (ConflictError)', async () => {
  const { state } = await seedRun('iris-run-stale', { seed: 9 });
  // Evaluated when production pointed to version 7 (it points to 1 now).
  const stale = { ...state, evaluate: { ...state.evaluate!, champion: { version: '7', metrics: { accuracy: 0.5 } } } };
  await expect(registerRun(props(stale))).rejects.toThrow(/registered but not promoted: alias production points to version 1, not 7/);
  expect((await getAlias(reg, 'iris', 'production'))!.record.version).toBe('1');
});

test('a later run evaluated against the current champion becomes the next version, moves production and records the previous version; the API serves it', async () => {
  const { state } = await seedRun('iris-run-2', { seed: 2 });
  const result = await registerRun(props({ ...state, evaluate: { ...state.evaluate!, champion: { version: '1', metrics: { accuracy: 0.93 } } } }));
  expect(result.version).toBe('3'); // version 2 is the stale run's, registered but not promoted
  expect((await getAlias(reg, 'iris', 'production'))!.record).toMatchObject({ version: '3', previous: '1' });

  const service = createInferenceService({ store: new ModelStore({ registry: reg }) });
  const response = await service({
    path: '/v2/models/iris/infer',
    httpMethod: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] }),
    isBase64Encoded: false,
  } as never);
  expect(response.statusCode).toBe(200);
  expect(JSON.parse(response.body).model_version).toBe('3');
});

test('the manifest promotion alias is used; a run the gate did not promote is registered without moving an alias', async () => {
  const staged = await registerRun(props((await seedRun('iris-run-3', { seed: 3, alias: 'staging' })).state));
  expect(staged).toMatchObject({ version: '4', aliases: ['staging'] });
  expect((await getAlias(reg, 'iris', 'staging'))!.record.version).toBe('4');
  expect((await getAlias(reg, 'iris', 'production'))!.record.version).toBe('3');

  const held = await registerRun(props((await seedRun('iris-run-4', { seed: 4, promote: false })).state));
  expect(held).toMatchObject({ version: '5', aliases: [] });
  expect((await getAlias(reg, 'iris', 'production'))!.record.version).toBe('3');
});

test('a run without its ONNX export fails with NotFoundError naming the object', async () => {
  const { state } = await seedRun('iris-run-5');
  await expect(registerRun(props({ ...state, export: { ...state.export!, onnxKey: 'runs/iris-run-5/export/missing.onnx' } }))).rejects.toThrow(NotFoundError);
  await expect(registerRun(props({ ...state, export: { ...state.export!, onnxKey: 'runs/iris-run-5/export/missing.onnx' } }))).rejects.toThrow(/missing\.onnx does not exist/);
});
