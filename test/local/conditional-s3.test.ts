import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { localS3Client } from '../../functions/core/aws';
import { evaluateConditions, writeConditions } from '../../local/conditional-s3';
import { localS3Fixture, MODEL_BUCKET, type S3Fixture } from '../support/local-s3';

let fx: S3Fixture;
beforeAll(async () => {
  fx = await localS3Fixture();
});
afterAll(async () => {
  await fx.close();
});

async function put(s3: S3Client, key: string, body: string | Uint8Array, conditions: { IfNoneMatch?: string; IfMatch?: string } = {}) {
  return s3.send(new PutObjectCommand({ Bucket: MODEL_BUCKET, Key: key, Body: body, ...conditions }));
}

async function statusOf(promise: Promise<unknown>): Promise<{ status: number; name: string }> {
  try {
    await promise;
    return { status: 200, name: 'OK' };
  } catch (error) {
    if (!(error instanceof S3ServiceException)) throw error;
    return { status: error.$metadata.httpStatusCode ?? 0, name: error.name };
  }
}

async function text(s3: S3Client, key: string): Promise<string> {
  const out = await s3.send(new GetObjectCommand({ Bucket: MODEL_BUCKET, Key: key }));
  return out.Body!.transformToString();
}

describe('s3rver alone', () => {
  test('given raw s3rver, a second If-None-Match put still succeeds (why the layer exists)', async () => {
    const raw = localS3Client(fx.server.rawEndpoint);
    await put(raw, 'raw/a.txt', 'one', { IfNoneMatch: '*' });
    const second = await statusOf(put(raw, 'raw/a.txt', 'two', { IfNoneMatch: '*' }));
    raw.destroy();
    expect(second.status).toBe(200);
  });
});

describe('conditional writes through the endpoint', () => {
  test('If-None-Match: * creates once, then answers 412 PreconditionFailed and keeps the first body', async () => {
    expect((await statusOf(put(fx.s3, 'c/once.txt', 'first', { IfNoneMatch: '*' }))).status).toBe(200);
    const second = await statusOf(put(fx.s3, 'c/once.txt', 'second', { IfNoneMatch: '*' }));
    expect(second).toEqual({ status: 412, name: 'PreconditionFailed' });
    expect(await text(fx.s3, 'c/once.txt')).toBe('first');
  });

  test('If-Match with the current ETag writes; with a stale ETag answers 412; on a missing key 404', async () => {
    const first = await put(fx.s3, 'c/match.txt', 'v1');
    const second = await put(fx.s3, 'c/match.txt', 'v2', { IfMatch: first.ETag });
    expect(await text(fx.s3, 'c/match.txt')).toBe('v2');
    expect(await statusOf(put(fx.s3, 'c/match.txt', 'v3', { IfMatch: first.ETag }))).toEqual({ status: 412, name: 'PreconditionFailed' });
    expect(await text(fx.s3, 'c/match.txt')).toBe('v2');
    expect((await statusOf(put(fx.s3, 'c/match.txt', 'v3', { IfMatch: second.ETag }))).status).toBe(200);
    expect((await statusOf(put(fx.s3, 'c/missing.txt', 'x', { IfMatch: first.ETag }))).status).toBe(404);
  });

  test('of many concurrent If-None-Match puts to one key exactly one wins, and its body is stored', async () => {
    const bodies = Array.from({ length: 8 }, (_, i) => `writer-${i}`);
    const results = await Promise.all(bodies.map((b) => statusOf(put(fx.s3, 'c/race.txt', b, { IfNoneMatch: '*' }))));
    const winners = results.map((r, i) => ({ ...r, i })).filter((r) => r.status === 200);
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => r.status === 412)).toHaveLength(bodies.length - 1);
    expect(await text(fx.s3, 'c/race.txt')).toBe(bodies[winners[0]!.i]);
  });

  test('of concurrent If-Match puts with the same ETag exactly one wins', async () => {
    const base = await put(fx.s3, 'c/alias.json', '{"version":"1"}');
    const results = await Promise.all(['2', '3', '4'].map((v) => statusOf(put(fx.s3, 'c/alias.json', `{"version":"${v}"}`, { IfMatch: base.ETag }))));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 412)).toHaveLength(2);
  });

  test('unconditional traffic passes byte for byte (binary body, metadata, content type) and s3rver events still fire', async () => {
    const body = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 1) body[i] = (i * 7919) % 256;
    const events: string[] = [];
    const listener = (e: { Records: Array<{ s3: { object: { key: string } } }> }) => events.push(e.Records[0]!.s3.object.key);
    fx.server.server.on('event', listener);
    await fx.s3.send(new PutObjectCommand({ Bucket: MODEL_BUCKET, Key: 'c/blob.bin', Body: body, ContentType: 'application/x-test', Metadata: { purpose: 'check' } }));
    fx.server.server.off('event', listener);
    const out = await fx.s3.send(new GetObjectCommand({ Bucket: MODEL_BUCKET, Key: 'c/blob.bin' }));
    const back = await out.Body!.transformToByteArray();
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(out.ContentType).toBe('application/x-test');
    expect(out.Metadata).toEqual({ purpose: 'check' });
    const head = await fx.s3.send(new HeadObjectCommand({ Bucket: MODEL_BUCKET, Key: 'c/blob.bin' }));
    expect(head.ContentLength).toBe(body.length);
    expect(events).toContain('c/blob.bin');
  });
});

describe('decisions', () => {
  test('only object writes carrying a condition are conditional', () => {
    expect(writeConditions('PUT', '/b/k', { 'if-none-match': '*' })).toEqual({ ifMatch: undefined, ifNoneMatch: '*' });
    expect(writeConditions('PUT', '/b/k', {})).toBeUndefined();
    expect(writeConditions('GET', '/b/k', { 'if-none-match': '"abc"' })).toBeUndefined();
    expect(writeConditions('PUT', '/b/k?partNumber=1&uploadId=x', { 'if-match': '"a"' })).toBeUndefined();
    expect(writeConditions('POST', '/b/k?uploadId=x', { 'if-none-match': '*' })).toEqual({ ifMatch: undefined, ifNoneMatch: '*' });
    expect(writeConditions('PUT', '/b', { 'if-none-match': '*' })).toBeUndefined();
  });

  test('If-None-Match and If-Match against present and absent objects', () => {
    expect(evaluateConditions({ ifNoneMatch: '*' }, undefined)).toEqual({ ok: true });
    expect(evaluateConditions({ ifNoneMatch: '*' }, '"e1"')).toMatchObject({ ok: false, status: 412 });
    expect(evaluateConditions({ ifMatch: '"e1"' }, '"e1"')).toEqual({ ok: true });
    expect(evaluateConditions({ ifMatch: 'e1' }, '"e1"')).toEqual({ ok: true });
    expect(evaluateConditions({ ifMatch: '"e1"' }, '"e2"')).toMatchObject({ ok: false, status: 412, condition: 'If-Match' });
    expect(evaluateConditions({ ifMatch: '"e1"' }, undefined)).toMatchObject({ ok: false, status: 404, code: 'NoSuchKey' });
  });
});
