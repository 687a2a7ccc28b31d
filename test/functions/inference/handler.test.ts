import type { APIGatewayProxyEvent } from 'aws-lambda';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateLocalKey, rawAesKeyring } from '../../../functions/core/crypto';
import { moveAlias } from '../../../functions/core/registry';
import { localS3Fixture, MODEL_BUCKET, type S3Fixture } from '../../support/local-s3';
import { irisLike, registerLinear, IRIS_CLASSES, IRIS_NORMALIZATION } from './fixtures';

let fx: S3Fixture;
let dir: string;
const saved = { ...process.env };

beforeAll(async () => {
  fx = await localS3Fixture();
  dir = mkdtempSync(join(tmpdir(), 'dlops-handler-'));
  const keyFile = join(dir, 'local-aes.key');
  const reg = { s3: fx.s3, bucket: MODEL_BUCKET, keyring: rawAesKeyring(loadOrCreateLocalKey(keyFile)) };
  await registerLinear(reg, 'iris', irisLike(1), { classNames: IRIS_CLASSES, normalization: IRIS_NORMALIZATION });
  await moveAlias(reg, { model: 'iris', alias: 'production', version: '1' });
  Object.assign(process.env, { DLOPS_S3_ENDPOINT: fx.server.endpoint, MODEL_BUCKET, DLOPS_LOCAL_KEY_FILE: keyFile, POWERTOOLS_METRICS_NAMESPACE: 'dlops' });
});
afterAll(async () => {
  process.env = saved;
  await fx.close();
  rmSync(dir, { recursive: true, force: true });
});

function infer(): APIGatewayProxyEvent {
  return {
    path: '/v2/models/iris/infer',
    httpMethod: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] }),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEvent;
}

test('the Lambda entry point serves from the environment and emits EMF metrics: cold start, load split, latency', async () => {
  const written: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  let first, second;
  try {
    const { handler } = await import('../../../functions/inference/handler');
    first = await handler(infer());
    second = await handler(infer());
  } finally {
    spy.mockRestore();
  }
  expect(first.statusCode).toBe(200);
  expect(second.statusCode).toBe(200);
  const emf = written
    .flatMap((chunk) => chunk.split('\n'))
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Namespace: string; Metrics: Array<{ Name: string }> }> } });
  const names = (i: number) => emf[i]!._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name);
  expect(emf).toHaveLength(2);
  expect(emf[0]!._aws.CloudWatchMetrics[0]!.Namespace).toBe('dlops');
  expect(names(0)).toEqual(expect.arrayContaining(['ColdStart', 'ModelLoadFetch', 'ModelLoadDecrypt', 'ModelLoadSession', 'InferenceLatency', 'RequestLatency']));
  // Warm: no cold start, no load.
  expect(names(1)).toEqual(expect.arrayContaining(['InferenceLatency', 'RequestLatency']));
  expect(names(1)).not.toContain('ColdStart');
  expect(names(1)).not.toContain('ModelLoadFetch');
  expect(written.join('')).toMatch(/"message":"Model loaded".*"decryptMs"/);
});
