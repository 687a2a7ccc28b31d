/**
 * Preprocess: validate the manifest, read the dataset in streams, split it (seeded, stratified
 * for classification), normalise with training-split statistics and write `.npy` shards plus
 * stats.json under prepared/<runId>/.
 *
 * Memory stays flat in the size of the data: three streaming passes over the S3 objects
 * (1: check every row and count rows per class; 2: mean/std of the training rows with
 * Welford's method; 3: normalise and write shards of bounded size). Besides one shard buffer
 * per split, the only state that grows is a one-byte split assignment per row.
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { PreprocessResult, RunInput } from '../core/contracts';
import { DataError } from '../core/errors';
import { datasetKeys, preparedKeys } from '../core/layout';
import { logger } from '../core/logger';
import { parseManifest, type ResolvedManifest } from '../core/manifest';
import { encodeNpy } from '../core/npy';
import { SPLITS, type PreparedStats, type ShardRef, type SplitName } from '../core/prepared';
import { deletePrefix, getBytes, getStream, listObjects, putBytes, putJson } from '../core/s3';
import { csvRows, jsonlRows, type FeatureLayout, type LayoutState, type Row } from './rows';

export interface PreprocessOptions {
  /** Upper bound of one x shard's data in bytes (rows per shard follow from the row width). @default 16 MiB */
  readonly maxShardBytes?: number;
  /** Fixed rows per shard (tests use small shards). @default from maxShardBytes */
  readonly rowsPerShard?: number;
  /** More distinct labels than this fails: the label is probably continuous (regression). @default 1000 */
  readonly maxClasses?: number;
}

const TRAIN = 0;
const VALIDATION = 1;
const TEST = 2;
const SPLIT_OF_CODE: readonly SplitName[] = ['train', 'validation', 'test'];

interface DataFile {
  readonly key: string;
  readonly etag: string;
}

/** mulberry32: a small, fast, seedable PRNG; the split only needs to be reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Split codes for `n` rows of one class (or of a whole regression dataset): exactly
 * round(n*test) test and round(n*validation) validation rows at seeded-random positions,
 * at least one training row.
 */
export function drawAssignment(n: number, fractions: { validation: number; test: number }, seed: number): Uint8Array {
  let nTest = Math.round(n * fractions.test);
  let nValidation = Math.round(n * fractions.validation);
  while (n > 0 && n - nTest - nValidation < 1) {
    if (nValidation > 0) nValidation -= 1;
    else nTest -= 1;
  }
  const codes = new Uint8Array(n);
  codes.fill(TEST, 0, nTest);
  codes.fill(VALIDATION, nTest, nTest + nValidation);
  const random = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = codes[i];
    codes[i] = codes[j];
    codes[j] = t;
  }
  return codes;
}

/** Class names in a stable order: numerically when every label is a number, else by code point. */
export function sortClassNames(labels: Iterable<string>): string[] {
  const names = [...labels];
  const numeric = names.every((n) => n.trim() !== '' && Number.isFinite(Number(n)));
  return numeric ? names.sort((a, b) => Number(a) - Number(b)) : names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

class ShardWriter {
  private readonly x: Float32Array;
  private readonly y: Int32Array | Float32Array;
  private rows = 0;
  private index = 0;
  readonly shards: ShardRef[] = [];
  total = 0;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly runId: string,
    private readonly split: SplitName,
    private readonly width: number,
    private readonly inputShape: number[],
    private readonly rowsPerShard: number,
    classification: boolean,
  ) {
    this.x = new Float32Array(rowsPerShard * width);
    this.y = classification ? new Int32Array(rowsPerShard) : new Float32Array(rowsPerShard);
  }

  async add(values: Float64Array, mean: Float64Array, std: Float64Array, y: number): Promise<void> {
    const base = this.rows * this.width;
    for (let i = 0; i < this.width; i++) this.x[base + i] = (values[i] - mean[i]) / std[i];
    this.y[this.rows] = y;
    this.rows += 1;
    this.total += 1;
    if (this.rows === this.rowsPerShard) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.rows === 0) return;
    const rows = this.rows;
    const xKey = preparedKeys.shard(this.runId, this.split, 'x', this.index);
    const yKey = preparedKeys.shard(this.runId, this.split, 'y', this.index);
    const x = encodeNpy({ dtype: 'float32', shape: [rows, ...this.inputShape], data: this.x.subarray(0, rows * this.width) });
    const y =
      this.y instanceof Int32Array
        ? encodeNpy({ dtype: 'int32', shape: [rows], data: this.y.subarray(0, rows) })
        : encodeNpy({ dtype: 'float32', shape: [rows], data: this.y.subarray(0, rows) });
    await putBytes(this.s3, { bucket: this.bucket, key: xKey }, x, { contentType: 'application/octet-stream' });
    await putBytes(this.s3, { bucket: this.bucket, key: yKey }, y, { contentType: 'application/octet-stream' });
    this.shards.push({ x: xKey, y: yKey, rows });
    this.index += 1;
    this.rows = 0;
  }
}

async function listDataFiles(s3: S3Client, bucket: string, dataset: string, format: 'csv' | 'jsonl'): Promise<DataFile[]> {
  const prefix = datasetKeys.dataPrefix(dataset);
  // Zero-byte keys ending in "/" are folder markers that consoles create, not data.
  const objects = (await listObjects(s3, bucket, prefix)).filter((o) => !o.key.endsWith('/'));
  const others = objects.filter((o) => !o.key.toLowerCase().endsWith(`.${format}`));
  if (others.length > 0) {
    const names = others.slice(0, 5).map((o) => o.key.slice(prefix.length));
    throw new DataError(
      `s3://${bucket}/${prefix} holds ${others.length} file(s) that are not .${format} (the manifest's format): ${names.join(', ')}${others.length > 5 ? ', ...' : ''}. Remove them or change "format".`,
    );
  }
  if (objects.length === 0) throw new DataError(`Empty dataset: s3://${bucket}/${prefix} has no .${format} files.`);
  return objects.sort((a, b) => (a.key < b.key ? -1 : 1)).map((o) => ({ key: o.key, etag: o.etag }));
}

/** Every row of every file, in key order; the first pass records each file's ETag, later passes insist on it. */
async function* readAll(s3: S3Client, bucket: string, files: DataFile[], manifest: ResolvedManifest, state: LayoutState): AsyncGenerator<Row> {
  for (const file of files) {
    const { stream, etag } = await getStream(s3, { bucket, key: file.key });
    if (file.etag !== '' && etag !== '' && etag !== file.etag) {
      stream.destroy();
      throw new DataError(`${file.key} changed while it was being preprocessed (ETag ${file.etag} became ${etag}); upload data files before dataset.json.`);
    }
    try {
      yield* manifest.format === 'csv' ? csvRows(stream, file.key, manifest, state) : jsonlRows(stream, file.key, manifest, state);
    } finally {
      stream.destroy();
    }
  }
}

interface Scan {
  readonly layout: FeatureLayout;
  readonly classNames?: string[];
  /** Rows per class id (classification) or one group (regression). */
  readonly groupSizes: number[];
  readonly total: number;
}

async function scan(s3: S3Client, bucket: string, files: DataFile[], manifest: ResolvedManifest, maxClasses: number): Promise<Scan> {
  const state: LayoutState = {};
  const counts = new Map<string, number>();
  const declared = manifest.classes !== undefined ? new Set(manifest.classes) : undefined;
  let total = 0;
  for await (const row of readAll(s3, bucket, files, manifest, state)) {
    total += 1;
    if (manifest.task !== 'classification') continue;
    const label = row.label as string;
    if (declared !== undefined && !declared.has(label)) {
      throw new DataError(`${row.file}, data row ${row.row} (line ${row.line}): unknown label ${JSON.stringify(label)} in column "${manifest.label}"; manifest.classes are ${manifest.classes!.map((c) => JSON.stringify(c)).join(', ')}.`);
    }
    counts.set(label, (counts.get(label) ?? 0) + 1);
    if (counts.size > maxClasses) {
      throw new DataError(`Label "${manifest.label}" has more than ${maxClasses} distinct values (at data row ${row.row}); a continuous target needs task "regression".`);
    }
  }
  const names = files.map((f) => f.key).join(', ');
  if (total === 0 || state.layout === undefined) throw new DataError(`Empty dataset: no data rows in ${names}.`);
  if (manifest.task === 'regression') return { layout: state.layout, groupSizes: [total], total };
  if (counts.size < 2) {
    const [only] = [...counts.keys()];
    throw new DataError(`Only one class: all ${total} rows have label "${manifest.label}" = ${JSON.stringify(only)}; classification needs at least two classes.`);
  }
  const classNames = manifest.classes ?? sortClassNames(counts.keys());
  return { layout: state.layout, classNames, groupSizes: classNames.map((c) => counts.get(c) ?? 0), total };
}

/** Runs Preprocess for one run. Leaves nothing under prepared/<runId>/ when it fails. */
export async function preprocess(s3: S3Client, input: RunInput, options: PreprocessOptions = {}): Promise<PreprocessResult> {
  const bucket = input.bucket;
  const prefix = preparedKeys.prefix(input.runId);
  const log = logger.createChild({ persistentKeys: { runId: input.runId, dataset: input.dataset } });
  // A retried attempt starts clean, so stats.json never lists shards of two attempts.
  await deletePrefix(s3, bucket, prefix);
  try {
    return await run(s3, input, options, log);
  } catch (error) {
    const removed = await deletePrefix(s3, bucket, prefix);
    log.error('preprocess failed; prepared output removed', { removed, error: error as Error });
    throw error;
  }
}

async function run(s3: S3Client, input: RunInput, options: PreprocessOptions, log: typeof logger): Promise<PreprocessResult> {
  const bucket = input.bucket;
  const { body: manifestBytes, etag: manifestETag } = await getBytes(s3, { bucket, key: input.manifestKey });
  if (input.manifestETag && manifestETag && input.manifestETag !== manifestETag) {
    log.warn('dataset.json changed after this run started; using the current version', { started: input.manifestETag, current: manifestETag });
  }
  const manifestHash = createHash('sha256').update(manifestBytes).digest('hex');
  const manifest = parseManifest(Buffer.from(manifestBytes).toString('utf8'), { defaultName: input.dataset, source: input.manifestKey });
  const files = await listDataFiles(s3, bucket, input.dataset, manifest.format);
  const classification = manifest.task === 'classification';

  // Pass 1: every row checked, rows counted per class.
  let started = Date.now();
  const found = await scan(s3, bucket, files, manifest, options.maxClasses ?? 1000);
  const { layout, classNames, groupSizes } = found;
  const width = layout.inputShape.reduce((a, b) => a * b, 1);
  log.info('pass 1: rows checked and counted', { rows: found.total, classes: classNames?.length, ms: Date.now() - started });

  const assignments = groupSizes.map((n, g) => drawAssignment(n, manifest.split, mix(manifest.split.seed, g)));
  const counts = { train: 0, validation: 0, test: 0 };
  for (const codes of assignments) for (const c of codes) counts[SPLIT_OF_CODE[c]] += 1;
  if (counts.test === 0) throw new DataError(`Too few rows: ${found.total} rows leave the test split empty (split.test ${manifest.split.test}).`);
  const classIndex = new Map(classNames?.map((c, i) => [c, i]));
  const groupOf = (row: Row) => (classification ? classIndex.get(row.label as string)! : 0);

  // Pass 2: mean and standard deviation of each feature over the training rows only.
  started = Date.now();
  const mean = new Float64Array(width);
  const m2 = new Float64Array(width);
  let n = 0;
  let seen = new Array<number>(groupSizes.length).fill(0);
  for await (const row of readAll(s3, bucket, files, manifest, { layout, lineNumbers: false })) {
    const g = groupOf(row);
    if (assignments[g][seen[g]++] !== TRAIN) continue;
    n += 1;
    for (let i = 0; i < width; i++) {
      const delta = row.values[i] - mean[i];
      mean[i] += delta / n;
      m2[i] += delta * (row.values[i] - mean[i]);
    }
  }
  const std = new Float64Array(width);
  // A constant feature has std 0; dividing by 1 keeps it at 0 after centring instead of NaN.
  for (let i = 0; i < width; i++) std[i] = Math.sqrt(m2[i] / n) > 1e-12 ? Math.sqrt(m2[i] / n) : 1;
  log.info('pass 2: training statistics', { trainRows: n, ms: Date.now() - started });

  // Pass 3: normalise and write shards.
  started = Date.now();
  const rowsPerShard = options.rowsPerShard ?? Math.max(1, Math.floor((options.maxShardBytes ?? 16 * 1024 * 1024) / (width * 4)));
  const writers = SPLITS.map((split) => new ShardWriter(s3, bucket, input.runId, split, width, layout.inputShape, rowsPerShard, classification));
  seen = seen.fill(0);
  for await (const row of readAll(s3, bucket, files, manifest, { layout, lineNumbers: false })) {
    const g = groupOf(row);
    const code = assignments[g][seen[g]++];
    await writers[code].add(row.values, mean, std, classification ? g : (row.label as number));
  }
  for (const w of writers) await w.flush();
  log.info('pass 3: shards written', { shards: writers.reduce((a, w) => a + w.shards.length, 0), ms: Date.now() - started });

  const stats: PreparedStats = {
    task: manifest.task,
    modelName: manifest.name,
    label: manifest.label,
    inputShape: layout.inputShape,
    featureNames: layout.featureNames,
    ...(classNames ? { classNames } : {}),
    normalization: { mean: Array.from(mean), std: Array.from(std) },
    counts,
    shards: { train: writers[TRAIN].shards, validation: writers[VALIDATION].shards, test: writers[TEST].shards },
    sources: files.map((f) => ({ key: f.key, etag: f.etag })),
    manifestHash,
    seed: manifest.split.seed,
  };
  for (const [i, w] of writers.entries()) {
    if (w.total !== counts[SPLIT_OF_CODE[i]]) throw new DataError(`The data changed between passes: ${w.total} ${SPLIT_OF_CODE[i]} rows written, ${counts[SPLIT_OF_CODE[i]]} counted.`);
  }
  await putJson(s3, { bucket, key: preparedKeys.manifest(input.runId) }, manifest);
  // stats.json last: its presence means the prepared data is complete.
  await putJson(s3, { bucket, key: preparedKeys.stats(input.runId) }, stats);
  return {
    modelName: manifest.name,
    task: manifest.task,
    preparedPrefix: preparedKeys.prefix(input.runId),
    statsKey: preparedKeys.stats(input.runId),
    inputShape: layout.inputShape,
    ...(classNames ? { classNames } : {}),
    counts,
  };
}

/** A per-class seed from the split seed, so adding a class does not reshuffle the others. */
function mix(seed: number, group: number): number {
  let h = (seed ^ Math.imul(group + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}
