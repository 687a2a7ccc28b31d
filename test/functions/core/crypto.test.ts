import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decryptArtifact,
  encryptArtifact,
  keyringFromEnv,
  kmsKeyring,
  loadOrCreateLocalKey,
  rawAesKeyring,
} from '../../../functions/core/crypto';
import { ConfigError, IntegrityError } from '../../../functions/core/errors';

const ctx = { model: 'iris', version: '3', artifact: 'model.onnx' };
const plaintext = new Uint8Array(Array.from({ length: 5000 }, (_, i) => (i * 31) % 256));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dlops-crypto-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('local key file', () => {
  test('given no file, it is created with 32 bytes, mode 0600, and read back unchanged', () => {
    const path = join(dir, 'state', 'keys', 'k.key');
    const first = loadOrCreateLocalKey(path);
    expect(first).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state', 'keys')).mode & 0o777).toBe(0o700);
    expect(loadOrCreateLocalKey(path)).toEqual(first);
  });
  test('a base64 key file is accepted, a short one refused with its size', () => {
    const key = randomBytes(32);
    writeFileSync(join(dir, 'b64.key'), key.toString('base64') + '\n');
    expect(Buffer.from(loadOrCreateLocalKey(join(dir, 'b64.key')))).toEqual(key);
    writeFileSync(join(dir, 'short.key'), 'abc');
    expect(() => loadOrCreateLocalKey(join(dir, 'short.key'))).toThrow(/32 bytes.*Found 3 bytes/);
  });
  test('keyringFromEnv needs a KMS key or a local key file', () => {
    expect(() => keyringFromEnv({})).toThrow(ConfigError);
    expect(() => keyringFromEnv({ KMS_KEY_ARN: 'not-an-arn' })).toThrow(/KMS key ARN. Received "not-an-arn"/);
    expect(keyringFromEnv({ DLOPS_LOCAL_KEY_FILE: join(dir, 'env.key') })).toBeDefined();
  });
});

describe('raw AES keyring', () => {
  const keyring = rawAesKeyring(randomBytes(32));

  test('round trip returns the plaintext; the ciphertext is not the plaintext', async () => {
    const ciphertext = await encryptArtifact(keyring, plaintext, ctx);
    expect(Buffer.from(ciphertext).includes(Buffer.from(plaintext.subarray(0, 64)))).toBe(false);
    expect(await decryptArtifact(keyring, ciphertext, ctx)).toEqual(plaintext);
  });

  test('one flipped byte anywhere in the body is refused', async () => {
    const ciphertext = await encryptArtifact(keyring, plaintext, ctx);
    for (const at of [ciphertext.length - 10, Math.floor(ciphertext.length / 2)]) {
      const tampered = Uint8Array.from(ciphertext);
      tampered[at]! ^= 0x01;
      await expect(decryptArtifact(keyring, tampered, ctx)).rejects.toThrow(IntegrityError);
    }
  });

  test('a ciphertext presented as another version or artifact is refused, naming the field', async () => {
    const ciphertext = await encryptArtifact(keyring, plaintext, ctx);
    await expect(decryptArtifact(keyring, ciphertext, { ...ctx, version: '4' })).rejects.toThrow(/context version is "3", expected "4"/);
    await expect(decryptArtifact(keyring, ciphertext, { ...ctx, artifact: 'tfjs/weights.bin' })).rejects.toThrow(IntegrityError);
    await expect(decryptArtifact(keyring, ciphertext, { ...ctx, model: 'other' })).rejects.toThrow(/context model/);
  });

  test('another key is refused', async () => {
    const ciphertext = await encryptArtifact(keyring, plaintext, ctx);
    await expect(decryptArtifact(rawAesKeyring(randomBytes(32)), ciphertext, ctx)).rejects.toThrow(IntegrityError);
  });

  test('bytes that are no message at all are refused', async () => {
    await expect(decryptArtifact(keyring, new Uint8Array([1, 2, 3, 4]), ctx)).rejects.toThrow(IntegrityError);
  });
});

describe('KMS keyring (KMS client mocked: no KMS server can run here)', () => {
  const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  // A stand-in for KMS: data keys wrapped with AES-GCM under a master key, bound to the context.
  function fakeKms(master: Buffer) {
    const calls: string[] = [];
    const aad = (c: Record<string, string> | undefined) => Buffer.from(JSON.stringify(Object.entries(c ?? {}).sort()));
    const wrap = (key: Uint8Array, c?: Record<string, string>) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', master, iv).setAAD(aad(c));
      return new Uint8Array(Buffer.concat([iv, cipher.update(key), cipher.final(), cipher.getAuthTag()]));
    };
    const client = {
      calls,
      generateDataKey: async (args: { KeyId?: string; NumberOfBytes?: number; EncryptionContext?: Record<string, string> }) => {
        calls.push('GenerateDataKey');
        const key = randomBytes(args.NumberOfBytes ?? 32);
        return { KeyId: args.KeyId, Plaintext: new Uint8Array(key), CiphertextBlob: wrap(key, args.EncryptionContext) };
      },
      encrypt: async (args: { KeyId?: string; Plaintext?: Uint8Array; EncryptionContext?: Record<string, string> }) => {
        calls.push('Encrypt');
        return { KeyId: args.KeyId, CiphertextBlob: wrap(args.Plaintext!, args.EncryptionContext) };
      },
      decrypt: async (args: { KeyId?: string; CiphertextBlob?: Uint8Array; EncryptionContext?: Record<string, string> }) => {
        calls.push('Decrypt');
        const blob = Buffer.from(args.CiphertextBlob!);
        const decipher = createDecipheriv('aes-256-gcm', master, blob.subarray(0, 12)).setAAD(aad(args.EncryptionContext));
        decipher.setAuthTag(blob.subarray(blob.length - 16));
        const key = Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
        return { KeyId: args.KeyId, Plaintext: new Uint8Array(key) };
      },
    };
    return client;
  }

  test('encrypts with GenerateDataKey on the configured key and decrypts with Decrypt; context checked', async () => {
    const kms = fakeKms(randomBytes(32));
    const keyring = kmsKeyring(keyArn, () => kms as never);
    const ciphertext = await encryptArtifact(keyring, plaintext, ctx);
    expect(kms.calls).toEqual(['GenerateDataKey']);
    expect(await decryptArtifact(keyring, ciphertext, ctx)).toEqual(plaintext);
    expect(kms.calls).toEqual(['GenerateDataKey', 'Decrypt']);
    await expect(decryptArtifact(keyring, ciphertext, { ...ctx, version: '9' })).rejects.toThrow(IntegrityError);
  });

  test('a KMS that cannot unwrap the data key (another key) is refused', async () => {
    const ciphertext = await encryptArtifact(kmsKeyring(keyArn, () => fakeKms(randomBytes(32)) as never), plaintext, ctx);
    const other = kmsKeyring(keyArn, () => fakeKms(randomBytes(32)) as never);
    await expect(decryptArtifact(other, ciphertext, ctx)).rejects.toThrow(IntegrityError);
  });

  test('a local-keyring ciphertext is not accepted by the KMS keyring', async () => {
    const ciphertext = await encryptArtifact(rawAesKeyring(randomBytes(32)), plaintext, ctx);
    await expect(decryptArtifact(kmsKeyring(keyArn, () => fakeKms(randomBytes(32)) as never), ciphertext, ctx)).rejects.toThrow(IntegrityError);
  });
});
