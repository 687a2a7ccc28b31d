/**
 * The model registry in S3 (DESIGN.md, "Model version"):
 *
 *   models/<name>/versions/<n>/version.json      claim of the number (If-None-Match: first writer wins)
 *   models/<name>/versions/<n>/<artifact>        ciphertexts (Encryption SDK), written next
 *   models/<name>/versions/<n>/manifest.json     plain manifest with digests, written last: a
 *                                                version exists for readers once this exists
 *   models/<name>/aliases/<alias>.json           {model, alias, version, updatedAt, previous?}
 *
 * Versions are decimal integers ordered numerically and never overwritten. Aliases move with
 * conditional writes (If-Match on the ETag read, If-None-Match for a new alias), so of two
 * concurrent promotions exactly one wins and the other gets a ConflictError.
 * The same code runs against S3 and against the local S3 server (local/conditional-s3.ts).
 */
import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import type { KeyringNode } from '@aws-crypto/client-node';
import { createHash } from 'node:crypto';
import type { Task } from './contracts';
import { decryptArtifact, encryptArtifact } from './crypto';
import { BadRequestError, ConflictError, IntegrityError, NotFoundError } from './errors';
import { modelKeys } from './layout';
import { getBytes, getJson, getJsonIfExists, headETag, listChildren, listObjects, putBytes, putJson } from './s3';

export interface Registry {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly keyring: KeyringNode;
}

/** An input or output tensor, as the Open Inference Protocol's model metadata states it. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: 'FP32' | 'BYTES' | 'INT32' | 'INT64';
  /** -1 for a variable dimension (the batch). */
  readonly shape: number[];
}

export interface ArtifactDigest {
  /** sha256 (hex) of the plaintext, checked after decryption. */
  readonly sha256: string;
  readonly bytes: number;
  /** Of the stored ciphertext, checked before decryption. */
  readonly ciphertext: { readonly sha256: string; readonly bytes: number };
}

export interface Lineage {
  readonly dataset: string;
  readonly runId: string;
  /** The data objects the run read, with their ETags. */
  readonly dataETags: Array<{ readonly key: string; readonly etag: string }>;
  /** sha256 of the dataset.json bytes. */
  readonly manifestHash: string;
  readonly codeVersion: string;
  readonly time: string;
}

export interface VersionManifest {
  readonly model: string;
  readonly version: string;
  readonly createdAt: string;
  readonly task: Task;
  readonly input: TensorSpec;
  readonly output: TensorSpec;
  readonly normalization: { readonly mean: number[]; readonly std: number[] };
  readonly classNames?: string[];
  readonly metrics: Record<string, number>;
  readonly parity?: unknown;
  readonly lineage: Lineage;
  readonly artifacts: Record<string, ArtifactDigest>;
  readonly encryption: { readonly format: 'aws-encryption-sdk'; readonly suite: string; readonly context: string[] };
}

export interface AliasRecord {
  readonly model: string;
  readonly alias: string;
  readonly version: string;
  readonly updatedAt: string;
  readonly previous?: string;
}

/** Names of models and aliases: they become key segments and URL path segments. */
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ALIAS = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
const VERSION = /^[1-9][0-9]{0,8}$/;

export function checkModelName(model: string): string {
  if (!NAME.test(model)) throw new BadRequestError(`Model name must be lowercase letters, digits and dashes (at most 63). Received "${model}".`);
  return model;
}

export function checkAliasName(alias: string): string {
  if (!ALIAS.test(alias)) throw new BadRequestError(`Alias must start with a letter and hold letters, digits, _ or - (at most 63). Received "${alias}".`);
  return alias;
}

export function isVersion(ref: string): boolean {
  return VERSION.test(ref);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The key that claims a version number; lives in the version's folder, built from the layout. */
function claimKey(model: string, version: string): string {
  return modelKeys.artifact(model, version, 'version.json');
}

const MODELS_PREFIX = modelKeys.root('_').slice(0, -'_/'.length);

/** Names of models that have at least one object in the registry. */
export async function listModels(reg: Registry): Promise<string[]> {
  // Not a delimiter listing: s3rver 3.7.1 omits a common prefix that holds only deeper "folders"
  // (models/<name>/ holds versions/ and aliases/), so derive names from the keys.
  const names = new Set<string>();
  for (const o of await listObjects(reg.s3, reg.bucket, MODELS_PREFIX)) names.add(o.key.slice(MODELS_PREFIX.length).split('/')[0]!);
  return [...names].filter((n) => NAME.test(n)).sort();
}

/** Complete versions (manifest written), in numeric order. */
export async function listVersions(reg: Registry, model: string): Promise<string[]> {
  checkModelName(model);
  const prefix = modelKeys.versions(model);
  const objects = await listObjects(reg.s3, reg.bucket, prefix);
  const versions: string[] = [];
  for (const o of objects) {
    const candidate = o.key.slice(prefix.length).split('/')[0]!;
    if (isVersion(candidate) && o.key === modelKeys.versionManifest(model, candidate)) versions.push(candidate);
  }
  return versions.sort((a, b) => Number(a) - Number(b));
}

/** Every number ever claimed (complete or not): the next version is above all of them. */
async function claimedVersions(reg: Registry, model: string): Promise<number[]> {
  // Each version folder holds version.json directly, which s3rver's delimiter listing needs.
  return (await listChildren(reg.s3, reg.bucket, modelKeys.versions(model))).filter(isVersion).map(Number);
}

export async function readManifest(reg: Registry, model: string, version: string): Promise<VersionManifest> {
  checkModelName(model);
  if (!isVersion(version)) throw new BadRequestError(`Version must be a positive decimal integer. Received "${version}".`);
  const found = await getJsonIfExists<VersionManifest>(reg.s3, { bucket: reg.bucket, key: modelKeys.versionManifest(model, version) });
  if (found === undefined) throw new NotFoundError(`Model ${model} has no version ${version}.`);
  return found.value;
}

export async function getAlias(reg: Registry, model: string, alias: string): Promise<{ record: AliasRecord; etag: string } | undefined> {
  checkModelName(model);
  checkAliasName(alias);
  const found = await getJsonIfExists<AliasRecord>(reg.s3, { bucket: reg.bucket, key: modelKeys.alias(model, alias) });
  return found === undefined ? undefined : { record: found.value, etag: found.etag };
}

export async function listAliases(reg: Registry, model: string): Promise<AliasRecord[]> {
  checkModelName(model);
  const prefix = modelKeys.aliases(model);
  const objects = (await listObjects(reg.s3, reg.bucket, prefix)).filter((o) => o.key.endsWith('.json'));
  const records = await Promise.all(objects.map(async (o) => (await getJson<AliasRecord>(reg.s3, { bucket: reg.bucket, key: o.key })).value));
  return records.sort((a, b) => a.alias.localeCompare(b.alias));
}

/** A version number, or the version an alias points to. NotFoundError names what is missing. */
export async function resolveVersion(reg: Registry, model: string, ref: string): Promise<string> {
  checkModelName(model);
  if (isVersion(ref)) {
    await readManifest(reg, model, ref);
    return ref;
  }
  const alias = await getAlias(reg, model, ref);
  if (alias === undefined) {
    const versions = await listVersions(reg, model);
    if (versions.length === 0) throw new NotFoundError(`No model named ${model}.`);
    throw new NotFoundError(`Model ${model} has no alias ${ref}.`);
  }
  return alias.record.version;
}

export interface NewVersion {
  readonly model: string;
  /** Plaintext artifacts by name (`model.onnx`, `tfjs/model.json`, `tfjs/weights.bin`). */
  readonly artifacts: Readonly<Record<string, Uint8Array>>;
  /** Everything of the manifest that does not depend on the version number or the ciphertexts. */
  readonly manifest: Omit<VersionManifest, 'model' | 'version' | 'createdAt' | 'artifacts' | 'encryption'>;
  /** @default - the current time */
  readonly now?: Date;
}

/**
 * Writes the next version: claims the number (If-None-Match; a lost race takes the next one),
 * then the encrypted artifacts, then manifest.json with the digests. Returns the version.
 */
export async function writeVersion(reg: Registry, input: NewVersion): Promise<{ version: string; manifestKey: string; manifest: VersionManifest }> {
  const model = checkModelName(input.model);
  const now = input.now ?? new Date();
  let next = Math.max(0, ...(await claimedVersions(reg, model))) + 1;
  let version: string | undefined;
  for (let attempt = 0; attempt < 20 && version === undefined; attempt++, next++) {
    try {
      await putJson(reg.s3, { bucket: reg.bucket, key: claimKey(model, String(next)) }, { model, version: String(next), runId: input.manifest.lineage.runId, claimedAt: now.toISOString() }, { ifNoneMatch: '*' });
      version = String(next);
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
    }
  }
  if (version === undefined) throw new ConflictError(`Model ${model}: could not claim a version number after 20 attempts (last tried ${next - 1}).`);

  const digests: Record<string, ArtifactDigest> = {};
  for (const [artifact, plaintext] of Object.entries(input.artifacts)) {
    const ciphertext = await encryptArtifact(reg.keyring, plaintext, { model, version, artifact });
    await putBytes(reg.s3, { bucket: reg.bucket, key: modelKeys.artifact(model, version, artifact) }, ciphertext, { contentType: 'application/octet-stream' });
    digests[artifact] = { sha256: sha256(plaintext), bytes: plaintext.length, ciphertext: { sha256: sha256(ciphertext), bytes: ciphertext.length } };
  }
  const manifest: VersionManifest = {
    model,
    version,
    createdAt: now.toISOString(),
    ...input.manifest,
    artifacts: digests,
    encryption: { format: 'aws-encryption-sdk', suite: 'AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384', context: ['model', 'version', 'artifact'] },
  };
  const manifestKey = modelKeys.versionManifest(model, version);
  await putJson(reg.s3, { bucket: reg.bucket, key: manifestKey }, manifest, { ifNoneMatch: '*' });
  return { version, manifestKey, manifest };
}

/**
 * Reads, checks and decrypts one artifact: the ciphertext's digest before decryption, the
 * encryption context during, the plaintext's digest after. Any mismatch is an IntegrityError.
 */
export async function readArtifact(reg: Registry, manifest: VersionManifest, artifact: string): Promise<Uint8Array> {
  const digest = manifest.artifacts[artifact];
  if (digest === undefined) throw new NotFoundError(`Model ${manifest.model} version ${manifest.version} has no artifact ${artifact}.`);
  const { body } = await getBytes(reg.s3, { bucket: reg.bucket, key: modelKeys.artifact(manifest.model, manifest.version, artifact) });
  return decryptVerified(reg.keyring, manifest, artifact, body);
}

/** The checks of readArtifact on bytes already fetched (the inference handler times fetch and decrypt apart). */
export async function decryptVerified(keyring: KeyringNode, manifest: VersionManifest, artifact: string, ciphertext: Uint8Array): Promise<Uint8Array> {
  const digest = manifest.artifacts[artifact];
  const where = `${manifest.model} version ${manifest.version} ${artifact}`;
  if (digest === undefined) throw new NotFoundError(`Model ${manifest.model} version ${manifest.version} has no artifact ${artifact}.`);
  const cipherSha = sha256(ciphertext);
  if (cipherSha !== digest.ciphertext.sha256) {
    throw new IntegrityError(`Refused ${where}: ciphertext sha256 ${cipherSha} differs from the manifest's ${digest.ciphertext.sha256}.`);
  }
  const plaintext = await decryptArtifact(keyring, ciphertext, { model: manifest.model, version: manifest.version, artifact });
  const plainSha = sha256(plaintext);
  if (plainSha !== digest.sha256) throw new IntegrityError(`Refused ${where}: plaintext sha256 ${plainSha} differs from the manifest's ${digest.sha256}.`);
  return plaintext;
}

export interface MoveAlias {
  readonly model: string;
  readonly alias: string;
  readonly version: string;
  /**
   * The alias ETag the caller saw: the move happens only if the alias is still there (null:
   * only if the alias does not exist yet).
   * @default - the ETag read just before the write
   */
  readonly expectedETag?: string | null;
  /** @default - the current time */
  readonly now?: Date;
}

/** Points an alias at a version with a conditional write. ConflictError when someone else moved it first. */
export async function moveAlias(reg: Registry, move: MoveAlias): Promise<{ record: AliasRecord; etag: string }> {
  const { model, alias, version } = move;
  checkAliasName(alias);
  await readManifest(reg, model, version);
  const ref = { bucket: reg.bucket, key: modelKeys.alias(model, alias) };
  const current = await getAlias(reg, model, alias);
  const expected = move.expectedETag === undefined ? (current?.etag ?? null) : move.expectedETag;
  // `previous` describes the alias this move replaces; if that is not what is stored, the write fails anyway.
  const replaced = current !== undefined && current.etag === expected ? current.record : undefined;
  const previous = replaced === undefined ? undefined : replaced.version !== version ? replaced.version : replaced.previous;
  const record: AliasRecord = { model, alias, version, updatedAt: (move.now ?? new Date()).toISOString(), ...(previous !== undefined ? { previous } : {}) };
  try {
    const { etag } = await putJson(reg.s3, ref, record, expected === null ? { ifNoneMatch: '*' } : { ifMatch: expected });
    return { record, etag };
  } catch (error) {
    const lost =
      error instanceof ConflictError ||
      (error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404));
    if (!lost) throw error;
    const seen = expected === null ? 'no alias yet' : `ETag ${expected}`;
    throw new ConflictError(
      `Alias ${alias} of model ${model} was not moved to version ${version}: it changed since it was read (${seen}); another promotion won. Re-read the alias and retry if still wanted.`,
      { cause: error },
    );
  }
}

/**
 * Moves an alias back: to `to` when given, else to the version it pointed to before its last
 * move. ConflictError when the alias has no previous version or moved meanwhile.
 */
export async function rollbackAlias(reg: Registry, input: { model: string; alias: string; to?: string; now?: Date }): Promise<{ record: AliasRecord; etag: string; from: string }> {
  const current = await getAlias(reg, input.model, input.alias);
  if (current === undefined) throw new NotFoundError(`Model ${input.model} has no alias ${input.alias}.`);
  const target = input.to ?? current.record.previous;
  if (target === undefined) throw new ConflictError(`Alias ${input.alias} of model ${input.model} has no previous version to roll back to (it points to ${current.record.version}).`);
  const moved = await moveAlias(reg, { model: input.model, alias: input.alias, version: target, expectedETag: current.etag, now: input.now });
  return { ...moved, from: current.record.version };
}

/** The current ETag of an alias (for callers that read first and promote later). */
export async function aliasETag(reg: Registry, model: string, alias: string): Promise<string | undefined> {
  return headETag(reg.s3, { bucket: reg.bucket, key: modelKeys.alias(checkModelName(model), checkAliasName(alias)) });
}
