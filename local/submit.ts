/**
 * `dlops submit`: uploads a dataset the way the pipeline expects it, data files first under
 * datasets/<name>/data/ and the manifest (the commit marker that starts a run) last, to the
 * local runtime or to the data bucket in AWS.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { localS3Client } from '../functions/core/aws';
import { ENV, optionalEnv } from '../functions/core/env';
import { BadRequestError, ConfigError, ManifestError } from '../functions/core/errors';
import { datasetKeys, MANIFEST_FILE } from '../functions/core/layout';
import { executionName } from '../functions/trigger/core';
import type { RuntimeInfo } from './runtime';
import { LOCAL_DATA_BUCKET, statePaths } from './runtime';

export interface SubmitTarget {
  readonly s3: S3Client;
  readonly bucket: string;
  /** Human-readable: "local runtime at http://127.0.0.1:4568" or "AWS". */
  readonly where: string;
  /** Whether the target is a local S3 server. */
  readonly local: boolean;
}

export interface TargetOptions {
  /** S3 endpoint of a local runtime. @default DLOPS_S3_ENDPOINT, else the running `local up` (.dlops/runtime.json), else AWS */
  readonly endpoint?: string;
  /** Data bucket. @default DATA_BUCKET, else the local runtime's */
  readonly bucket?: string;
  /** @default .dlops in the working folder */
  readonly stateDirectory?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Whether a process id is alive (signal 0 tests without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A running `local up`'s runtime.json, or undefined (none, or its process is gone). */
export function runningRuntime(stateDirectory = '.dlops'): RuntimeInfo | undefined {
  const file = statePaths(stateDirectory).runtimeFile;
  if (!existsSync(file)) return undefined;
  const info = JSON.parse(readFileSync(file, 'utf8')) as RuntimeInfo;
  return alive(info.pid) ? info : undefined;
}

/**
 * The local S3 endpoint a command should use: an explicit one, the environment's
 * (DLOPS_S3_ENDPOINT), else a running `local up`'s (with its runtime.json); undefined means AWS.
 */
export function localTarget(endpoint: string | undefined, stateDirectory: string | undefined, env: NodeJS.ProcessEnv): { endpoint: string; running?: RuntimeInfo } | undefined {
  const given = endpoint ?? optionalEnv(ENV.s3Endpoint, env);
  if (given !== undefined) return { endpoint: given };
  const running = runningRuntime(stateDirectory);
  return running === undefined ? undefined : { endpoint: running.s3Endpoint, running };
}

/** Chooses where to upload: an explicit endpoint, the environment's, a running `local up`, or AWS. */
export function resolveTarget(options: TargetOptions = {}): SubmitTarget {
  const env = options.env ?? process.env;
  const local = localTarget(options.endpoint, options.stateDirectory, env);
  if (local?.running !== undefined) {
    const { running } = local;
    return { s3: localS3Client(running.s3Endpoint), bucket: options.bucket ?? running.dataBucket, where: `local runtime at ${running.s3Endpoint} (pid ${running.pid})`, local: true };
  }
  if (local !== undefined) {
    return { s3: localS3Client(local.endpoint), bucket: options.bucket ?? optionalEnv(ENV.dataBucket, env) ?? LOCAL_DATA_BUCKET, where: `local S3 at ${local.endpoint}`, local: true };
  }
  const bucket = options.bucket ?? optionalEnv(ENV.dataBucket, env);
  if (bucket === undefined) {
    throw new ConfigError(
      'No target: start `dlops local up` (or set DLOPS_S3_ENDPOINT) for the local runtime, or give --bucket / DATA_BUCKET (the stack output DataBucketName) for AWS.',
    );
  }
  // Loaded only for AWS: the default credential chain and region come from the environment.
  const { S3Client: Client } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  return { s3: new Client({}), bucket, where: 'AWS', local: false };
}

export interface SubmitOptions {
  /** A data file, or a folder of data files (a dataset.json at its top is the manifest). */
  readonly path: string;
  readonly dataset: string;
  /** @default <folder>/dataset.json */
  readonly manifestFile?: string;
  /** Upload even when the manifest does not validate (the run then fails in Preprocess). @default false */
  readonly skipValidation?: boolean;
  readonly onUpload?: (key: string, bytes: number) => void;
}

export interface SubmitResult {
  readonly bucket: string;
  readonly dataKeys: string[];
  readonly manifestKey: string;
  readonly manifestETag: string;
  /** The execution name the trigger will give the run. */
  readonly runId: string;
}

const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The data files to upload and the manifest file, from a file or folder. */
export function collectFiles(path: string, manifestFile?: string): { data: Array<{ file: string; name: string }>; manifest: string } {
  const root = resolve(path);
  if (!existsSync(root)) throw new BadRequestError(`${path} does not exist.`);
  const isDir = statSync(root).isDirectory();
  const manifest = manifestFile !== undefined ? resolve(manifestFile) : isDir ? join(root, MANIFEST_FILE) : undefined;
  if (manifest === undefined || !existsSync(manifest)) {
    throw new BadRequestError(`No manifest: give --manifest FILE${isDir ? ` or put ${MANIFEST_FILE} in ${path}` : ''}.`);
  }
  const data: Array<{ file: string; name: string }> = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const file = join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.isFile() && file !== manifest) data.push({ file, name: relative(root, file).split(sep).join('/') });
    }
  };
  if (isDir) walk(root);
  else if (root !== manifest) data.push({ file: root, name: basename(root) });
  if (data.length === 0) throw new BadRequestError(`${path} holds no data files besides the manifest.`);
  return { data: data.sort((a, b) => a.name.localeCompare(b.name)), manifest };
}

/** Uploads the data files, then the manifest last, and says which run that starts. */
export async function submitDataset(target: SubmitTarget, options: SubmitOptions): Promise<SubmitResult> {
  if (!DATASET_NAME.test(options.dataset)) {
    throw new BadRequestError(`--dataset must be letters, digits, '.', '_' or '-' (at most 128). Received ${JSON.stringify(options.dataset)}.`);
  }
  const { data, manifest } = collectFiles(options.path, options.manifestFile);
  const manifestBytes = readFileSync(manifest);
  if (!options.skipValidation) {
    // The pipeline validates again; this only saves a run that would fail in its first step.
    const { parseManifest } = await import('../functions/core/manifest');
    try {
      parseManifest(manifestBytes.toString('utf8'));
    } catch (error) {
      if (error instanceof ManifestError) throw new ManifestError(`${manifest} is not a valid manifest, nothing uploaded:\n${error.message}`, { cause: error });
      throw error;
    }
  }
  const dataKeys: string[] = [];
  for (const { file, name } of data) {
    const key = `${datasetKeys.dataPrefix(options.dataset)}${name}`;
    const size = statSync(file).size;
    // Streamed: a data file is never held in memory whole.
    await target.s3.send(new PutObjectCommand({ Bucket: target.bucket, Key: key, Body: createReadStream(file), ContentLength: size }));
    options.onUpload?.(key, size);
    dataKeys.push(key);
  }
  const manifestKey = datasetKeys.manifest(options.dataset);
  const out = await target.s3.send(new PutObjectCommand({ Bucket: target.bucket, Key: manifestKey, Body: manifestBytes, ContentType: 'application/json' }));
  options.onUpload?.(manifestKey, manifestBytes.length);
  const manifestETag = (out.ETag ?? '').replace(/"/g, '');
  return { bucket: target.bucket, dataKeys, manifestKey, manifestETag, runId: executionName(options.dataset, manifestETag) };
}
