import { CopyObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { rawAesKeyring } from '../../../functions/core/crypto';
import { ConflictError, IntegrityError, NotFoundError } from '../../../functions/core/errors';
import { modelKeys } from '../../../functions/core/layout';
import {
  getAlias,
  listAliases,
  listModels,
  listVersions,
  moveAlias,
  readArtifact,
  readManifest,
  resolveVersion,
  rollbackAlias,
  type Registry,
} from '../../../functions/core/registry';
import { localS3Fixture, MODEL_BUCKET, type S3Fixture } from '../../support/local-s3';
import { irisLike, registerLinear, IRIS_CLASSES } from '../inference/fixtures';

let fx: S3Fixture;
let reg: Registry;
beforeAll(async () => {
  fx = await localS3Fixture();
  reg = { s3: fx.s3, bucket: MODEL_BUCKET, keyring: rawAesKeyring(randomBytes(32)) };
});
afterAll(async () => {
  await fx.close();
});

async function rawObject(key: string): Promise<Uint8Array> {
  const out = await fx.s3.send(new GetObjectCommand({ Bucket: MODEL_BUCKET, Key: key }));
  return out.Body!.transformToByteArray();
}

describe('versions', () => {
  test('given two registrations, versions are "1" then "2", stored encrypted, and read back to the same bytes', async () => {
    const first = await registerLinear(reg, 'iris', irisLike(1), { classNames: IRIS_CLASSES });
    const second = await registerLinear(reg, 'iris', irisLike(2), { classNames: IRIS_CLASSES });
    expect([first.version, second.version]).toEqual(['1', '2']);
    const stored = await rawObject(modelKeys.artifact('iris', '2', 'model.onnx'));
    expect(Buffer.from(stored).includes(Buffer.from(second.onnx.subarray(0, 40)))).toBe(false);
    const manifest = await readManifest(reg, 'iris', '2');
    expect(manifest.artifacts['model.onnx']!.bytes).toBe(second.onnx.length);
    expect(Object.keys(manifest.artifacts).sort()).toEqual(['model.onnx', 'tfjs/model.json', 'tfjs/weights.bin']);
    expect(await readArtifact(reg, manifest, 'model.onnx')).toEqual(second.onnx);
  });

  test('versions are ordered numerically (10 after 9) and listed only once their manifest exists', async () => {
    for (let i = 0; i < 10; i++) await registerLinear(reg, 'many', irisLike(i));
    // A claimed number without a manifest (a Register that died half-way) is skipped, never reused.
    await fx.s3.send(new PutObjectCommand({ Bucket: MODEL_BUCKET, Key: modelKeys.artifact('many', '11', 'version.json'), Body: '{}' }));
    const versions = await listVersions(reg, 'many');
    expect(versions).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    const next = await registerLinear(reg, 'many', irisLike(99));
    expect(next.version).toBe('12');
  });

  test('concurrent registrations get distinct numbers', async () => {
    const results = await Promise.all([1, 2, 3].map((i) => registerLinear(reg, 'race', irisLike(i))));
    expect(results.map((r) => r.version).sort()).toEqual(['1', '2', '3']);
  });

  test('a ciphertext copied into another version is refused (digest, then context)', async () => {
    // Version 1's ciphertext placed over version 2's: the manifest digest catches it first.
    await fx.s3.send(
      new CopyObjectCommand({ Bucket: MODEL_BUCKET, Key: modelKeys.artifact('iris', '2', 'model.onnx'), CopySource: `${MODEL_BUCKET}/${modelKeys.artifact('iris', '1', 'model.onnx')}` }),
    );
    const manifest2 = await readManifest(reg, 'iris', '2');
    await expect(readArtifact(reg, manifest2, 'model.onnx')).rejects.toThrow(/ciphertext sha256 .* differs/);
    // Even with the digests also copied, the encryption context (version "1") is refused.
    const manifest1 = await readManifest(reg, 'iris', '1');
    const forged = { ...manifest2, artifacts: { ...manifest2.artifacts, 'model.onnx': manifest1.artifacts['model.onnx']! } };
    await expect(readArtifact(reg, forged, 'model.onnx')).rejects.toThrow(/encryption context version is "1", expected "2"/);
  });

  test('one byte flipped in a stored ciphertext is refused', async () => {
    const { version, manifest } = await registerLinear(reg, 'tamper', irisLike(3));
    const key = modelKeys.artifact('tamper', version, 'model.onnx');
    const bytes = await rawObject(key);
    bytes[bytes.length - 100]! ^= 0x40;
    await fx.s3.send(new PutObjectCommand({ Bucket: MODEL_BUCKET, Key: key, Body: bytes }));
    await expect(readArtifact(reg, manifest, 'model.onnx')).rejects.toThrow(IntegrityError);
    // Digest check bypassed: the Encryption SDK refuses the message itself.
    const digestMatches = { ...manifest, artifacts: { ...manifest.artifacts, 'model.onnx': { ...manifest.artifacts['model.onnx']!, ciphertext: { sha256: require('node:crypto').createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length } } } };
    await expect(readArtifact(reg, digestMatches, 'model.onnx')).rejects.toThrow(/did not decrypt/);
  });

  test('a registry with another key cannot read the artifacts', async () => {
    const manifest = await readManifest(reg, 'iris', '1');
    await expect(readArtifact({ ...reg, keyring: rawAesKeyring(randomBytes(32)) }, manifest, 'model.onnx')).rejects.toThrow(IntegrityError);
  });

  test('unknown model or version is NotFoundError naming it', async () => {
    await expect(readManifest(reg, 'iris', '77')).rejects.toThrow('Model iris has no version 77.');
    await expect(resolveVersion(reg, 'nope', 'production')).rejects.toThrow('No model named nope.');
  });
});

describe('aliases', () => {
  test('promote creates the alias, a second move records previous, rollback returns to it', async () => {
    const created = await moveAlias(reg, { model: 'iris', alias: 'production', version: '1' });
    expect(created.record).toMatchObject({ model: 'iris', alias: 'production', version: '1' });
    expect(created.record.previous).toBeUndefined();
    const moved = await moveAlias(reg, { model: 'iris', alias: 'production', version: '2' });
    expect(moved.record).toMatchObject({ version: '2', previous: '1' });
    expect(await resolveVersion(reg, 'iris', 'production')).toBe('2');
    const back = await rollbackAlias(reg, { model: 'iris', alias: 'production' });
    expect(back.from).toBe('2');
    expect((await getAlias(reg, 'iris', 'production'))!.record).toMatchObject({ version: '1', previous: '2' });
    await moveAlias(reg, { model: 'iris', alias: 'staging', version: '2' });
    expect((await listAliases(reg, 'iris')).map((a) => `${a.alias}=${a.version}`)).toEqual(['production=1', 'staging=2']);
    expect(await listModels(reg)).toEqual(expect.arrayContaining(['iris', 'many', 'race', 'tamper']));
  });

  test('an alias cannot point to a version that does not exist', async () => {
    await expect(moveAlias(reg, { model: 'iris', alias: 'production', version: '42' })).rejects.toThrow(NotFoundError);
  });

  test('rollback of an alias without history is a ConflictError', async () => {
    await moveAlias(reg, { model: 'race', alias: 'production', version: '1' });
    await expect(rollbackAlias(reg, { model: 'race', alias: 'production' })).rejects.toThrow(/no previous version/);
  });

  test('two concurrent promotions from the same alias state: exactly one wins, the other gets a ConflictError', async () => {
    const seen = await getAlias(reg, 'iris', 'production');
    const results = await Promise.allSettled(
      ['2', '1'].map((version) => moveAlias(reg, { model: 'iris', alias: 'production', version, expectedETag: seen!.etag })),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(ConflictError);
    expect(lost[0]!.reason.message).toMatch(/Alias production of model iris was not moved to version \d: it changed since it was read/);
    const winner = (won[0] as PromiseFulfilledResult<{ record: { version: string } }>).value.record.version;
    expect((await getAlias(reg, 'iris', 'production'))!.record.version).toBe(winner);
  });

  test('two concurrent creations of a new alias: exactly one wins', async () => {
    const results = await Promise.allSettled(['1', '2', '3'].map((version) => moveAlias(reg, { model: 'race', alias: 'canary', version, expectedETag: null })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const reasons = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason);
    expect(reasons).toHaveLength(2);
    reasons.forEach((reason) => expect(reason).toBeInstanceOf(ConflictError));
  });
});
