import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { ConflictError, NotFoundError } from './errors';

/** Where an object lives. */
export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
}

export interface PutOptions {
  readonly contentType?: string;
  /** Write only if no object exists at the key (`If-None-Match: *`). */
  readonly ifNoneMatch?: '*';
  /** Write only if the current object's ETag is this one (`If-Match`). */
  readonly ifMatch?: string;
  readonly metadata?: Record<string, string>;
}

function isMissing(error: unknown): boolean {
  if (!(error instanceof S3ServiceException)) return false;
  return error.name === 'NoSuchKey' || error.name === 'NotFound' || error.$metadata.httpStatusCode === 404;
}

function isPreconditionFailure(error: unknown): boolean {
  if (!(error instanceof S3ServiceException)) return false;
  const status = error.$metadata.httpStatusCode;
  return error.name === 'PreconditionFailed' || error.name === 'ConditionalRequestConflict' || status === 412 || status === 409;
}

/** Reads a whole object. Throws NotFoundError naming the object when it does not exist. */
export async function getBytes(s3: S3Client, ref: ObjectRef): Promise<{ body: Uint8Array; etag: string }> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    const body = await out.Body!.transformToByteArray();
    return { body, etag: out.ETag ?? '' };
  } catch (error) {
    if (isMissing(error)) throw new NotFoundError(`s3://${ref.bucket}/${ref.key} does not exist.`, { cause: error });
    throw error;
  }
}

/** Opens an object as a Node.js stream (for parsing data without holding it in memory). */
export async function getStream(s3: S3Client, ref: ObjectRef): Promise<{ stream: Readable; etag: string; size: number }> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    return { stream: out.Body as Readable, etag: out.ETag ?? '', size: out.ContentLength ?? 0 };
  } catch (error) {
    if (isMissing(error)) throw new NotFoundError(`s3://${ref.bucket}/${ref.key} does not exist.`, { cause: error });
    throw error;
  }
}

export async function getText(s3: S3Client, ref: ObjectRef): Promise<{ text: string; etag: string }> {
  const { body, etag } = await getBytes(s3, ref);
  return { text: Buffer.from(body).toString('utf8'), etag };
}

export async function getJson<T = unknown>(s3: S3Client, ref: ObjectRef): Promise<{ value: T; etag: string }> {
  const { text, etag } = await getText(s3, ref);
  return { value: JSON.parse(text) as T, etag };
}

/** Like getJson, but undefined when the object does not exist. */
export async function getJsonIfExists<T = unknown>(s3: S3Client, ref: ObjectRef): Promise<{ value: T; etag: string } | undefined> {
  try {
    return await getJson<T>(s3, ref);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

/**
 * Writes an object. With ifNoneMatch/ifMatch, a lost condition is a ConflictError
 * (S3 answers 412 PreconditionFailed, or 409 when a concurrent conditional write is in flight).
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 */
export async function putBytes(s3: S3Client, ref: ObjectRef, body: Uint8Array | string | Readable, options: PutOptions = {}): Promise<{ etag: string }> {
  try {
    const out = await s3.send(
      new PutObjectCommand({
        Bucket: ref.bucket,
        Key: ref.key,
        Body: body,
        ContentType: options.contentType,
        IfNoneMatch: options.ifNoneMatch,
        IfMatch: options.ifMatch,
        Metadata: options.metadata,
      }),
    );
    return { etag: out.ETag ?? '' };
  } catch (error) {
    if (isPreconditionFailure(error)) {
      const condition = options.ifNoneMatch ? 'no object exists yet' : `its ETag is still ${options.ifMatch}`;
      throw new ConflictError(`s3://${ref.bucket}/${ref.key} was not written: the write required that ${condition}.`, { cause: error });
    }
    throw error;
  }
}

export async function putJson(s3: S3Client, ref: ObjectRef, value: unknown, options: PutOptions = {}): Promise<{ etag: string }> {
  return putBytes(s3, ref, JSON.stringify(value, null, 2), { contentType: 'application/json', ...options });
}

/** The object's ETag, or undefined when it does not exist. */
export async function headETag(s3: S3Client, ref: ObjectRef): Promise<string | undefined> {
  try {
    const out = await s3.send(new HeadObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    return out.ETag;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/** Every object under a prefix (all pages), with ETag and size. */
export async function listObjects(s3: S3Client, bucket: string, prefix: string): Promise<Array<{ key: string; etag: string; size: number }>> {
  const found: Array<{ key: string; etag: string; size: number }> = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const item of page.Contents ?? []) found.push({ key: item.Key!, etag: item.ETag ?? '', size: item.Size ?? 0 });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return found;
}

/** The "folders" directly under a prefix (CommonPrefixes with delimiter '/'), without the prefix. */
export async function listChildren(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }));
    for (const p of page.CommonPrefixes ?? []) names.push(p.Prefix!.slice(prefix.length).replace(/\/$/, ''));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return names;
}

/** Deletes everything under a prefix (used to leave nothing half-written after a failure). */
export async function deletePrefix(s3: S3Client, bucket: string, prefix: string): Promise<number> {
  const objects = await listObjects(s3, bucket, prefix);
  for (let i = 0; i < objects.length; i += 1000) {
    const chunk = objects.slice(i, i + 1000);
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: chunk.map((o) => ({ Key: o.key })), Quiet: true } }));
  }
  return objects.length;
}
