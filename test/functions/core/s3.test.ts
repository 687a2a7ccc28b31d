import { Readable } from 'node:stream';
import { getBytes, getJson, getJsonIfExists, putBytes, listChildren, listObjects, putJson, deletePrefix } from '../../../functions/core/s3';
import { NotFoundError } from '../../../functions/core/errors';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

describe('core/s3 against the local S3 server', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  test('a JSON object round-trips and lists under its prefix', async () => {
    // Given
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: 'a/b/one.json' }, { n: 1 });
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: 'a/c/two.json' }, { n: 2 });
    // When
    const { value } = await getJson<{ n: number }>(fx.s3, { bucket: DATA_BUCKET, key: 'a/b/one.json' });
    // Then
    expect(value.n).toBe(1);
    expect((await listObjects(fx.s3, DATA_BUCKET, 'a/')).map((o) => o.key).sort()).toEqual(['a/b/one.json', 'a/c/two.json']);
    expect((await listChildren(fx.s3, DATA_BUCKET, 'a/')).sort()).toEqual(['b', 'c']);
  });

  test('a missing object is a NotFoundError naming it, or undefined from getJsonIfExists', async () => {
    await expect(getJson(fx.s3, { bucket: DATA_BUCKET, key: 'nope.json' })).rejects.toThrow(NotFoundError);
    await expect(getJson(fx.s3, { bucket: DATA_BUCKET, key: 'nope.json' })).rejects.toThrow(/nope\.json does not exist/);
    expect(await getJsonIfExists(fx.s3, { bucket: DATA_BUCKET, key: 'nope.json' })).toBeUndefined();
  });

  test('deletePrefix removes everything under the prefix and nothing else', async () => {
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: 'del/x.json' }, {});
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: 'keep/y.json' }, {});
    expect(await deletePrefix(fx.s3, DATA_BUCKET, 'del/')).toBe(1);
    expect(await listObjects(fx.s3, DATA_BUCKET, 'del/')).toEqual([]);
    expect(await listObjects(fx.s3, DATA_BUCKET, 'keep/')).toHaveLength(1);
  });

  test('a streamed body is stored byte for byte (no aws-chunked framing)', async () => {
    const bytes = Buffer.alloc(300_000, 7);
    bytes.write('dlops', 1234);
    await putBytes(fx.s3, { bucket: DATA_BUCKET, key: 'stream/a.bin' }, Readable.from([bytes.subarray(0, 100_000), bytes.subarray(100_000)]), {});
    const { body } = await getBytes(fx.s3, { bucket: DATA_BUCKET, key: 'stream/a.bin' });
    expect(Buffer.from(body).equals(bytes)).toBe(true);
  });
});
