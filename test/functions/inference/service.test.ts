import type { APIGatewayProxyEvent } from 'aws-lambda';
import { PutObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { rawAesKeyring } from '../../../functions/core/crypto';
import { modelKeys } from '../../../functions/core/layout';
import { moveAlias, type Registry } from '../../../functions/core/registry';
import { ModelStore } from '../../../functions/inference/models';
import { createInferenceService } from '../../../functions/inference/service';
import { startApiAdapter, type ApiAdapter } from '../../../local/api-adapter';
import { localS3Fixture, MODEL_BUCKET, type S3Fixture } from '../../support/local-s3';
import { irisLike, linearReference, registerLinear, IRIS_CLASSES, IRIS_NORMALIZATION, type LinearModel } from './fixtures';

let fx: S3Fixture;
let reg: Registry;
let now = 0;
let sessionsCreated = 0;
let store: ModelStore;
let service: ReturnType<typeof createInferenceService>;
const v1 = irisLike(1);
const v2 = irisLike(2);
const image: LinearModel = { inputShape: [2, 2, 1], weights: Float32Array.from([1, 0, 0, 1, 1, 0, 0, 1]), bias: Float32Array.from([0, 0]), softmax: true };
const regressor: LinearModel = { inputShape: [3], weights: Float32Array.from([1, 2, 3]), bias: Float32Array.from([0.5]), softmax: false };

function event(method: string, path: string, body?: unknown, headers: Record<string, string> = { 'Content-Type': 'application/json' }): APIGatewayProxyEvent {
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: method,
    headers,
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: { proxy: path.slice(1) },
    stageVariables: null,
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: {} as APIGatewayProxyEvent['requestContext'],
  };
}

async function call(method: string, path: string, body?: unknown, headers?: Record<string, string>) {
  const result = await service(event(method, path, body, headers));
  return { status: result.statusCode, body: JSON.parse(result.body) as Record<string, any> };
}

const rows = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
];
function expected(m: LinearModel, x: number[][], norm = IRIS_NORMALIZATION): number[][] {
  const flat = Float32Array.from(x.flat().map((v, i) => (v - norm.mean[i % 4]!) / norm.std[i % 4]!));
  return linearReference(m, flat, x.length);
}

beforeAll(async () => {
  fx = await localS3Fixture();
  reg = { s3: fx.s3, bucket: MODEL_BUCKET, keyring: rawAesKeyring(randomBytes(32)) };
  await registerLinear(reg, 'iris', v1, { classNames: IRIS_CLASSES, normalization: IRIS_NORMALIZATION });
  await registerLinear(reg, 'iris', v2, { classNames: IRIS_CLASSES, normalization: IRIS_NORMALIZATION });
  await moveAlias(reg, { model: 'iris', alias: 'production', version: '1' });
  await moveAlias(reg, { model: 'iris', alias: 'staging', version: '2' });
  await registerLinear(reg, 'digits', image, { classNames: ['a', 'b'] });
  await moveAlias(reg, { model: 'digits', alias: 'production', version: '1' });
  await registerLinear(reg, 'house', regressor);
  await moveAlias(reg, { model: 'house', alias: 'production', version: '1' });
  // A version whose ciphertext was replaced by bytes under another key: must never be served.
  const { version } = await registerLinear(reg, 'broken', v1, { classNames: IRIS_CLASSES, normalization: IRIS_NORMALIZATION });
  await moveAlias(reg, { model: 'broken', alias: 'production', version });
  const key = modelKeys.artifact('broken', version, 'model.onnx');
  const stored = await (await fx.s3.send(new GetObjectCommand({ Bucket: MODEL_BUCKET, Key: key }))).Body!.transformToByteArray();
  stored[stored.length - 200]! ^= 0xff;
  await fx.s3.send(new PutObjectCommand({ Bucket: MODEL_BUCKET, Key: key, Body: stored }));

  store = new ModelStore({
    registry: reg,
    aliasTtlMs: 30_000,
    clock: () => now,
    createSession: async (bytes) => {
      sessionsCreated += 1;
      return ort.InferenceSession.create(bytes);
    },
  });
  service = createInferenceService({ store, maxBatch: 4, maxBodyBytes: 4096 });
});
afterAll(async () => {
  await fx.close();
});

describe('health and metadata', () => {
  test('live, ready and server metadata', async () => {
    expect(await call('GET', '/v2/health/live')).toEqual({ status: 200, body: { live: true } });
    expect(await call('GET', '/v2/health/ready')).toEqual({ status: 200, body: { ready: true } });
    expect((await call('GET', '/v2')).body).toMatchObject({ name: 'dlops', extensions: [] });
  });

  test('model metadata names the input, the outputs and the versions', async () => {
    const { status, body } = await call('GET', '/v2/models/iris');
    expect(status).toBe(200);
    expect(body).toEqual({
      name: 'iris',
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [
        { name: 'output', datatype: 'FP32', shape: [-1, 3] },
        { name: 'label', datatype: 'BYTES', shape: [-1] },
      ],
    });
    expect((await call('GET', '/v2/models/iris/versions/2')).body.versions).toEqual(['2']);
    expect((await call('GET', '/v2/models/house')).body.outputs).toEqual([{ name: 'output', datatype: 'FP32', shape: [-1, 1] }]);
  });

  test('model ready loads the version; TF Serving status names it', async () => {
    expect(await call('GET', '/v2/models/iris/ready')).toEqual({ status: 200, body: { name: 'iris', version: '1', ready: true } });
    expect((await call('GET', '/v2/models/iris/versions/staging/ready')).body).toMatchObject({ version: '2', ready: true });
    expect((await call('GET', '/v1/models/iris')).body).toEqual({ model_version_status: [{ version: '1', state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } }] });
  });
});

describe('Open Inference Protocol infer', () => {
  test('flat data: probabilities of the normalised rows and class names, id echoed', async () => {
    const { status, body } = await call('POST', '/v2/models/iris/infer', { id: 'r-1', inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: rows.flat() }] });
    expect(status).toBe(200);
    expect(body.model_name).toBe('iris');
    expect(body.model_version).toBe('1');
    expect(body.id).toBe('r-1');
    const [probs, label] = body.outputs;
    expect(probs).toMatchObject({ name: 'output', datatype: 'FP32', shape: [2, 3] });
    const want = expected(v1, rows);
    probs.data.forEach((p: number, i: number) => expect(p).toBeCloseTo(want.flat()[i]!, 5));
    const wantLabels = want.map((r) => IRIS_CLASSES[r.indexOf(Math.max(...r))]);
    expect(label).toEqual({ name: 'label', datatype: 'BYTES', shape: [2], data: wantLabels });
  });

  test('nested data, a version by number and by alias, and a requested output subset', async () => {
    const request = { inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: rows }], outputs: [{ name: 'label' }] };
    const byNumber = await call('POST', '/v2/models/iris/versions/2/infer', request);
    const byAlias = await call('POST', '/v2/models/iris/versions/staging/infer', request);
    expect(byNumber.status).toBe(200);
    expect(byNumber.body.model_version).toBe('2');
    expect(byNumber.body.outputs.map((o: { name: string }) => o.name)).toEqual(['label']);
    expect(byAlias.body.outputs).toEqual(byNumber.body.outputs);
    expect(typeof byNumber.body.id).toBe('string');
  });

  test('an image-shaped input [batch, 2, 2, 1], nested', async () => {
    const { status, body } = await call('POST', '/v2/models/digits/infer', { inputs: [{ name: 'input', shape: [1, 2, 2, 1], datatype: 'FP32', data: [[[[3], [0]], [[0], [1]]]] }] });
    expect(status).toBe(200);
    expect(body.outputs[0].shape).toEqual([1, 2]);
    // x = [3,0,0,1]: logits [3+0, 0+1] -> class a
    expect(body.outputs[1].data).toEqual(['a']);
  });

  test('regression answers values, no label', async () => {
    const { body } = await call('POST', '/v2/models/house/infer', { inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 1, 1] }] });
    expect(body.outputs).toHaveLength(1);
    expect(body.outputs[0]).toMatchObject({ name: 'output', shape: [1, 1] });
    expect(body.outputs[0].data[0]).toBeCloseTo(6.5, 5);
  });

  test('a request laid out exactly as the protocol specification example gets a response a v2 client parses', async () => {
    // The specification's example (inference_rest.md, "Inference Request Examples") with this model's tensor.
    const specLike = { id: '42', inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3] }], outputs: [{ name: 'output' }] };
    const api: ApiAdapter = await startApiAdapter({ handler: async (e) => service(e) });
    try {
      const response = await fetch(`${api.url}/v2/models/iris/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(specLike) });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      const parsed = parseV2Response(await response.json());
      expect(parsed.id).toBe('42');
      expect(parsed.outputs.output!.shape).toEqual([2, 3]);
      parsed.outputs.output!.rows.forEach((r) => expect(r.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5));

      // The specification's own example names inputs this model lacks: a 400 with the reason, in the protocol's error shape.
      const verbatim = {
        id: '42',
        inputs: [
          { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] },
          { name: 'input1', shape: [3], datatype: 'BOOL', data: [true] },
        ],
        outputs: [{ name: 'output0' }],
      };
      const refused = await fetch(`${api.url}/v2/models/iris/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(verbatim) });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toEqual({ error: 'Model iris takes 1 input ("input"); the request has 2.' });
    } finally {
      await api.stop();
    }
  });
});

/** What a KServe/Triton HTTP client checks of an infer response, per the specification. */
function parseV2Response(value: any): { id: string; outputs: Record<string, { shape: number[]; rows: number[][] }> } {
  if (typeof value.model_name !== 'string') throw new Error('model_name missing');
  if (typeof value.id !== 'string') throw new Error('id missing');
  if (!Array.isArray(value.outputs)) throw new Error('outputs missing');
  const outputs: Record<string, { shape: number[]; rows: number[][] }> = {};
  for (const o of value.outputs) {
    if (typeof o.name !== 'string' || !Array.isArray(o.shape) || typeof o.datatype !== 'string' || !Array.isArray(o.data)) throw new Error(`bad output ${JSON.stringify(o)}`);
    const count = o.shape.reduce((a: number, b: number) => a * b, 1);
    if (count !== o.data.length) throw new Error(`output ${o.name}: shape ${o.shape} but ${o.data.length} values`);
    if (o.datatype === 'FP32' && !o.data.every((v: unknown) => typeof v === 'number')) throw new Error('FP32 data must be numbers');
    const width = count / o.shape[0];
    outputs[o.name] = { shape: o.shape, rows: Array.from({ length: o.shape[0] }, (_, r) => o.data.slice(r * width, (r + 1) * width)) };
  }
  return { id: value.id, outputs };
}

describe('TF Serving predict', () => {
  test('row format: instances -> predictions with probabilities and label', async () => {
    const { status, body } = await call('POST', '/v1/models/iris:predict', { instances: rows });
    expect(status).toBe(200);
    const want = expected(v1, rows);
    expect(body.predictions).toHaveLength(2);
    body.predictions.forEach((p: { output: number[]; label: string }, i: number) => {
      p.output.forEach((v, j) => expect(v).toBeCloseTo(want[i]![j]!, 5));
      expect(p.label).toBe(IRIS_CLASSES[want[i]!.indexOf(Math.max(...want[i]!))]);
    });
  });

  test('named instances, versions and labels (aliases), columnar format, regression', async () => {
    const named = await call('POST', '/v1/models/iris/versions/2:predict', { instances: rows.map((r) => ({ input: r })) });
    const labelled = await call('POST', '/v1/models/iris/labels/staging:predict', { instances: rows });
    expect(named.status).toBe(200);
    expect(labelled.body).toEqual(named.body);
    const columnar = await call('POST', '/v1/models/iris:predict', { inputs: { input: rows } });
    expect(Object.keys(columnar.body.outputs)).toEqual(['output', 'label']);
    expect(columnar.body.outputs.output).toHaveLength(2);
    const reg = await call('POST', '/v1/models/house:predict', { instances: [[1, 1, 1], [0, 0, 0]] });
    expect(reg.body.predictions[0][0]).toBeCloseTo(6.5, 5);
    expect(reg.body.predictions[1][0]).toBeCloseTo(0.5, 5);
  });
});

describe('errors', () => {
  const ok = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
  const cases: Array<[string, string, string, unknown, Record<string, string> | undefined, number, RegExp]> = [
    ['body not JSON', 'POST', '/v2/models/iris/infer', '{"inputs": [', undefined, 400, /not valid JSON/],
    ['no inputs', 'POST', '/v2/models/iris/infer', { id: 'x' }, undefined, 400, /"inputs" must be a non-empty array/],
    ['wrong input name', 'POST', '/v2/models/iris/infer', { inputs: [{ ...ok.inputs[0], name: 'x' }] }, undefined, 400, /inputs\[0\]\.name is "x"; model iris takes "input"/],
    ['wrong datatype', 'POST', '/v2/models/iris/infer', { inputs: [{ ...ok.inputs[0], datatype: 'INT64' }] }, undefined, 400, /datatype is "INT64"; input "input" is FP32/],
    ['wrong dims', 'POST', '/v2/models/iris/infer', { inputs: [{ ...ok.inputs[0], shape: [1, 5], data: [1, 2, 3, 4, 5] }] }, undefined, 400, /shape is \[1, 5\]; input "input" has shape \[-1, 4\]/],
    ['element count', 'POST', '/v2/models/iris/infer', { inputs: [{ ...ok.inputs[0], data: [1, 2, 3] }] }, undefined, 400, /has 3 values; shape \[1, 4\] needs 4/],
    ['non-number', 'POST', '/v2/models/iris/infer', { inputs: [{ ...ok.inputs[0], data: [1, 2, 'x', 4] }] }, undefined, 400, /element 2 must be a finite number.*"x"/],
    ['ragged', 'POST', '/v2/models/iris/infer', { inputs: [{ ...ok.inputs[0], shape: [2, 4], data: [[1, 2, 3, 4], [1, 2, 3]] }] }, undefined, 400, /ragged/],
    ['unknown output', 'POST', '/v2/models/iris/infer', { ...ok, outputs: [{ name: 'probs' }] }, undefined, 400, /outputs\[0\]\.name is "probs"; model iris offers "output", "label"/],
    ['tf no instances', 'POST', '/v1/models/iris:predict', { foo: 1 }, undefined, 400, /needs "instances"/],
    ['tf wrong width', 'POST', '/v1/models/iris:predict', { instances: [[1, 2]] }, undefined, 400, /instances\[0\] has 2 values; shape \[4\] needs 4/],
    ['unknown model', 'POST', '/v2/models/nosuch/infer', ok, undefined, 404, /No model named nosuch/],
    ['unknown version', 'POST', '/v2/models/iris/versions/9/infer', ok, undefined, 404, /Model iris has no version 9/],
    ['unknown alias', 'GET', '/v2/models/iris/versions/canary', undefined, undefined, 404, /Model iris has no alias canary \(versions: 1, 2\)/],
    ['unknown route', 'GET', '/v3/anything', undefined, undefined, 404, /No route for GET \/v3\/anything/],
    ['wrong method', 'GET', '/v2/models/iris/infer', undefined, undefined, 405, /GET is not allowed on \/v2\/models\/iris\/infer; use POST/],
    ['batch over the limit', 'POST', '/v2/models/iris/infer', { inputs: [{ name: 'input', shape: [5, 4], datatype: 'FP32', data: new Array(20).fill(1) }] }, undefined, 413, /5 examples; the limit is 4/],
    ['body over the limit', 'POST', '/v1/models/iris:predict', { instances: new Array(400).fill([1.123456, 2, 3, 4]) }, undefined, 413, /bytes; the limit is 4096/],
    ['not JSON', 'POST', '/v2/models/iris/infer', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }, 415, /Content-Type application\/x-www-form-urlencoded is not supported: send application\/json/],
    ['model refused by decryption', 'POST', '/v2/models/broken/infer', ok, undefined, 503, /Model broken version 1 cannot be served: its artifact failed the integrity checks/],
  ];
  test.each(cases)('%s', async (_name, method, path, body, headers, status, message) => {
    const result = await service(event(method, path, body, headers));
    expect(result.statusCode).toBe(status);
    const parsed = JSON.parse(result.body);
    expect(Object.keys(parsed)).toEqual(['error']);
    expect(parsed.error).toMatch(message);
    expect(result.body).not.toMatch(/\s+at\s+\S+\s*\(|\.ts:\d+/); // never a stack trace
  });

  test('a refused model stays refused (the failed load is not cached as good) and the ready route says 503', async () => {
    expect((await call('GET', '/v2/models/broken/ready')).status).toBe(503);
    expect((await call('POST', '/v2/models/broken/infer', ok)).status).toBe(503);
  });
});

describe('warm reuse', () => {
  test('the session is built once per version across warm invocations; a promotion is seen after the alias TTL', async () => {
    const before = sessionsCreated;
    const loadsBefore = store.loads;
    const request = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: rows[0] }] };
    for (let i = 0; i < 5; i++) expect((await call('POST', '/v2/models/iris/infer', request)).body.model_version).toBe('1');
    // v1 was loaded by earlier tests already: five more requests build nothing.
    expect(sessionsCreated - before).toBe(0);
    expect(store.loads - loadsBefore).toBe(0);

    await moveAlias(reg, { model: 'iris', alias: 'production', version: '2' });
    expect((await call('POST', '/v2/models/iris/infer', request)).body.model_version).toBe('1'); // alias still cached
    now += 30_001;
    expect((await call('POST', '/v2/models/iris/infer', request)).body.model_version).toBe('2');
    expect((await call('POST', '/v2/models/iris/infer', request)).body.model_version).toBe('2');
    // Version 2 was loaded by the staging tests: still no new session.
    expect(sessionsCreated - before).toBe(0);
    await moveAlias(reg, { model: 'iris', alias: 'production', version: '1' });
  });

  test('a fresh store loads each version once however many requests arrive at once', async () => {
    let created = 0;
    const fresh = new ModelStore({ registry: reg, createSession: async (b) => ((created += 1), ort.InferenceSession.create(b)) });
    const svc = createInferenceService({ store: fresh });
    const request = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: rows[0] }] });
    const results = await Promise.all(Array.from({ length: 6 }, () => svc(event('POST', '/v2/models/iris/infer', request))));
    expect(results.every((r) => r.statusCode === 200)).toBe(true);
    expect(created).toBe(1);
    expect(fresh.loads).toBe(1);
  });
});
