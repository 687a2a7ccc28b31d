/**
 * Envelope encryption of model artifacts with the AWS Encryption SDK.
 *
 * In AWS the keyring is a KMS keyring on the customer-managed key (KMS_KEY_ARN); locally it is a
 * raw AES-256 keyring whose key lives in a 0600 file under the local state folder
 * (DLOPS_LOCAL_KEY_FILE). Both write the same message format with the SDK's default suite,
 * which commits to the key and signs (ECDSA P-384), so a ciphertext cannot be re-wrapped or
 * altered by anyone who may only decrypt.
 * https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/supported-algorithms.html
 *
 * Every artifact is bound to `{model, version, artifact}` through the encryption context, which
 * the message authenticates; decrypt checks that the context inside the message is the one the
 * caller expects, so a ciphertext copied to another version or artifact is refused.
 */
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  KmsKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  type KeyringNode,
  type KmsNodeClientSupplier,
} from '@aws-crypto/client-node';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { ENV, optionalEnv } from './env';
import { ConfigError, IntegrityError } from './errors';

/** What an artifact ciphertext is bound to. */
export interface ArtifactContext {
  readonly model: string;
  readonly version: string;
  /** Path of the artifact inside the version, e.g. `model.onnx`, `tfjs/model.json`. */
  readonly artifact: string;
}

/** The suite every dlops ciphertext must use: the SDK's default (key commitment + ECDSA signature). */
export const ARTIFACT_SUITE = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;

/** Key provider namespace and name of the local raw AES keyring (stored in each message). */
export const LOCAL_KEY_NAMESPACE = 'dlops-local';
export const LOCAL_KEY_NAME = 'local-aes-256';

/** Where the local runtime keeps its AES key unless DLOPS_LOCAL_KEY_FILE says otherwise. */
export const DEFAULT_LOCAL_KEY_FILE = '.dlops/keys/local-aes.key';

// Each artifact is wrapped by one key: refusing messages with more data keys bounds the work an
// attacker-supplied ciphertext can cause (the SDK's recommended limit).
const client = buildClient({ commitmentPolicy: CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT, maxEncryptedDataKeys: 1 });

/** A KMS keyring on one key; `clientProvider` exists for the keyring's own unit test. */
export function kmsKeyring(keyArn: string, clientProvider?: KmsNodeClientSupplier): KeyringNode {
  if (!/^arn:aws[a-z-]*:kms:/.test(keyArn)) throw new ConfigError(`${ENV.kmsKeyArn} must be a KMS key ARN. Received "${keyArn}".`);
  return new KmsKeyringNode({ generatorKeyId: keyArn, ...(clientProvider ? { clientProvider } : {}) });
}

/** A raw AES-256-GCM keyring on a 32-byte key. */
export function rawAesKeyring(key: Uint8Array): KeyringNode {
  if (key.length !== 32) throw new ConfigError(`The local AES key must be 32 bytes. Received ${key.length} bytes.`);
  return new RawAesKeyringNode({
    keyNamespace: LOCAL_KEY_NAMESPACE,
    keyName: LOCAL_KEY_NAME,
    unencryptedMasterKey: new Uint8Array(key),
    wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
  });
}

/**
 * Reads the local key file, creating it (32 random bytes, mode 0600, folder 0700) when it does
 * not exist. Accepts the raw 32 bytes or their base64 text.
 */
export function loadOrCreateLocalKey(path: string): Uint8Array {
  const file = resolve(path);
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    try {
      // 'wx': of two processes starting at once, one creates and the other reads its key.
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, randomBytes(32));
      closeSync(fd);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  const bytes = readFileSync(file);
  if (bytes.length === 32) return new Uint8Array(bytes);
  const decoded = Buffer.from(bytes.toString('utf8').trim(), 'base64');
  if (decoded.length === 32) return new Uint8Array(decoded);
  throw new ConfigError(`Local key file ${file} must hold 32 bytes (raw or base64). Found ${bytes.length} bytes.`);
}

/**
 * The keyring the environment asks for: KMS when KMS_KEY_ARN is set, else the local AES key
 * (DLOPS_LOCAL_KEY_FILE, or the default path when the local S3 endpoint is in use).
 */
export function keyringFromEnv(env: NodeJS.ProcessEnv = process.env): KeyringNode {
  const keyArn = optionalEnv(ENV.kmsKeyArn, env);
  if (keyArn !== undefined) return kmsKeyring(keyArn);
  const keyFile = optionalEnv(ENV.localKeyFile, env) ?? (optionalEnv(ENV.s3Endpoint, env) !== undefined ? DEFAULT_LOCAL_KEY_FILE : undefined);
  if (keyFile === undefined) {
    throw new ConfigError(`Set ${ENV.kmsKeyArn} (AWS) or ${ENV.localKeyFile} (local runtime) so model artifacts can be encrypted and decrypted.`);
  }
  return rawAesKeyring(loadOrCreateLocalKey(keyFile));
}

function contextOf(ctx: ArtifactContext): Record<string, string> {
  return { model: ctx.model, version: ctx.version, artifact: ctx.artifact };
}

/** Encrypts one artifact, bound to its model, version and name. */
export async function encryptArtifact(keyring: KeyringNode, plaintext: Uint8Array, ctx: ArtifactContext): Promise<Uint8Array> {
  const { result } = await client.encrypt(keyring, plaintext, { encryptionContext: contextOf(ctx), suiteId: ARTIFACT_SUITE });
  return new Uint8Array(result.buffer, result.byteOffset, result.byteLength);
}

/**
 * Decrypts one artifact. Refuses, with IntegrityError, a message that does not authenticate
 * (altered bytes, another key), that uses another suite, or whose context is not `ctx`.
 */
export async function decryptArtifact(keyring: KeyringNode, ciphertext: Uint8Array, ctx: ArtifactContext): Promise<Uint8Array> {
  const where = `${ctx.model} version ${ctx.version} ${ctx.artifact}`;
  let output;
  try {
    output = await client.decrypt(keyring, ciphertext);
  } catch (error) {
    throw new IntegrityError(`Refused ${where}: the ciphertext did not decrypt (${(error as Error).message}).`, { cause: error });
  }
  const { plaintext, messageHeader } = output;
  if (messageHeader.suiteId !== ARTIFACT_SUITE) {
    throw new IntegrityError(`Refused ${where}: algorithm suite ${messageHeader.suiteId} is not the committing, signing suite ${ARTIFACT_SUITE}.`);
  }
  const expected = contextOf(ctx);
  for (const [name, value] of Object.entries(expected)) {
    const found = messageHeader.encryptionContext[name];
    if (found !== value) {
      throw new IntegrityError(`Refused ${where}: encryption context ${name} is "${found ?? '(missing)'}", expected "${value}".`);
    }
  }
  return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
}
