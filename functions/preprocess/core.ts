/**
 * Preprocess: validate the manifest, read the dataset in streams, split it (seeded, stratified
 * for classification), normalise with training-split statistics and write `.npy` shards plus
 * stats.json under prepared/<runId>/.
 *
 * Memory stays flat in the size of the data. The data files are parsed once, streamed: every
 * row is checked, counted per class and spilled as raw float32 shards under
 * prepared/<runId>/spill/. Once the class counts are known the split is drawn, and two passes
 * over the spilled shards (binary, far cheaper than parsing text again) compute the training
 * rows' mean/std with Welford's method, then normalise and write the final shards. Besides a
 * few shard buffers of bounded size, the only state that grows is one byte per row (its split).
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { PreprocessResult, RunInput } from '../core/contracts';
import { DataError } from '../core/errors';
import { datasetKeys, preparedKeys } from '../core/layout';
import { logger } from '../core/logger';
import { parseManifest, type ResolvedManifest } from '../core/manifest';
import { decodeNpy, encodeNpy } from '../core/npy';
import { SPLITS, type PreparedStats, type ShardRef, type SplitName } from '../core/prepared';
import { deletePrefix, getBytes, getStream, listObjects, putBytes, putJson } from '../core/s3';
import { csvRows, jsonlRows, type FeatureLayout, type LayoutState, type Row } from './rows';
import { seededRandom } from '../core/random';

export interface PreprocessOptions {
  /**
   * Upper bound of one x shard's data in bytes (rows per shard follow from the row width). Each
   * shard in flight is held a few times over (download, decode, write buffers), so this, not the
   * data size, sets peak memory (measured by bench/preprocess-memory.ts).
   * @default 4 MiB
   */
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

/** Buffers rows into `.npy` shard pairs of at most `rowsPerShard` rows and uploads each when full. */
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
    private readonly key: (part: 'x' | 'y', index: number) => string,
    private readonly width: number,
    private readonly inputShape: number[],
    private readonly rowsPerShard: number,
    classification: boolean,
    /** x' = (x - mean) / std on the way in; raw values when absent. */
    private readonly normalise?: { readonly mean: Float64Array; readonly std: Float64Array },
  ) {
    this.x = new Float32Array(rowsPerShard * width);
    this.y = classification ? new Int32Array(rowsPerShard) : new Float32Array(rowsPerShard);
  }

  /** Adds the row at `values[offset .. offset + width)`. */
  async add(values: ArrayLike<number>, offset: number, y: number): Promise<void> {
    const base = this.rows * this.width;
    const n = this.normalise;
    if (n === undefined) for (let i = 0; i < this.width; i++) this.x[base + i] = values[offset + i];
    else for (let i = 0; i < this.width; i++) this.x[base + i] = (values[offset + i] - n.mean[i]) / n.std[i];
    this.y[this.rows] = y;
    this.rows += 1;
    this.total += 1;
    if (this.rows === this.rowsPerShard) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.rows === 0) return;
    const rows = this.rows;
    const xKey = this.key('x', this.index);
    const yKey = this.key('y', this.index);
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

/** Every row of every file, in key order; a file whose ETag changed since it was listed is an error. */
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

const SPILL = 'spill';

interface Spilled {
  readonly layout: FeatureLayout;
  readonly classNames?: string[];
  /** Rows per class id (classification) or one group (regression). */
  readonly groupSizes: number[];
  /** The spilled shards, rows in file order; y holds provisional class ids (see `finalId`) or targets. */
  readonly shards: ShardRef[];
  /** Provisional class id (order of first appearance) -> index in classNames. */
  readonly finalId: Int32Array;
  readonly total: number;
}

interface SpillOptions {
  readonly maxClasses: number;
  readonly rowsPerShard?: number;
  readonly maxShardBytes: number;
}

/** The one parse of the data: rows checked, classes counted, raw features spilled as float32 shards. */
async function parseAndSpill(s3: S3Client, bucket: string, runId: string, files: DataFile[], manifest: ResolvedManifest, options: SpillOptions): Promise<Spilled> {
  const state: LayoutState = {};
  const classification = manifest.task === 'classification';
  const ids = new Map<string, number>();
  const counts: number[] = [];
  const declared = manifest.classes !== undefined ? new Set(manifest.classes) : undefined;
  let spill: ShardWriter | undefined;
  let total = 0;
  for await (const row of readAll(s3, bucket, files, manifest, state)) {
    total += 1;
    let y: number;
    if (classification) {
      const label = row.label as string;
      let id = ids.get(label);
      if (id === undefined) {
        if (declared !== undefined && !declared.has(label)) {
          throw new DataError(`${row.file}, data row ${row.row} (line ${row.line}): unknown label ${JSON.stringify(label)} in column "${manifest.label}"; manifest.classes are ${manifest.classes!.map((c) => JSON.stringify(c)).join(', ')}.`);
        }
        if (ids.size >= options.maxClasses) {
          throw new DataError(`Label "${manifest.label}" has more than ${options.maxClasses} distinct values (at data row ${row.row}); a continuous target needs task "regression".`);
        }
        id = ids.size;
        ids.set(label, id);
        counts.push(0);
      }
      counts[id] += 1;
      y = id;
    } else {
      y = row.label as number;
    }
    if (spill === undefined) {
      const layout = state.layout!;
      const width = layout.inputShape.reduce((a, b) => a * b, 1);
      spill = new ShardWriter(s3, bucket, (part, i) => preparedKeys.shard(runId, SPILL, part, i), width, [width], rowsFor(width, options), classification);
    }
    await spill.add(row.values, 0, y);
  }
  const names = files.map((f) => f.key).join(', ');
  if (total === 0 || state.layout === undefined || spill === undefined) throw new DataError(`Empty dataset: no data rows in ${names}.`);
  await spill.flush();
  if (!classification) return { layout: state.layout, groupSizes: [total], shards: spill.shards, finalId: new Int32Array(0), total };
  if (ids.size < 2) {
    const [only] = [...ids.keys()];
    throw new DataError(`Only one class: all ${total} rows have label "${manifest.label}" = ${JSON.stringify(only)}; classification needs at least two classes.`);
  }
  const classNames = manifest.classes ?? sortClassNames(ids.keys());
  const index = new Map(classNames.map((c, i) => [c, i]));
  const finalId = new Int32Array(ids.size);
  for (const [label, id] of ids) finalId[id] = index.get(label)!;
  const groupSizes = classNames.map((c) => (ids.has(c) ? counts[ids.get(c)!] : 0));
  return { layout: state.layout, classNames, groupSizes, shards: spill.shards, finalId, total };
}

function rowsFor(width: number, options: { rowsPerShard?: number; maxShardBytes: number }): number {
  return options.rowsPerShard ?? Math.max(1, Math.floor(options.maxShardBytes / (width * 4)));
}

/** The spilled shards one at a time (each is at most one shard's bytes in memory). */
async function* readSpill(s3: S3Client, bucket: string, shards: ShardRef[]): AsyncGenerator<{ x: Float32Array; y: Int32Array | Float32Array; rows: number }> {
  for (const shard of shards) {
    const [x, y] = await Promise.all([getBytes(s3, { bucket, key: shard.x }), getBytes(s3, { bucket, key: shard.y })]);
    yield { x: decodeNpy(x.body, shard.x).data as Float32Array, y: decodeNpy(y.body, shard.y).data, rows: shard.rows };
  }
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

/** S3 returns ETags quoted; EventBridge events carry them bare. */
function unquote(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}

async function run(s3: S3Client, input: RunInput, options: PreprocessOptions, log: typeof logger): Promise<PreprocessResult> {
  const bucket = input.bucket;
  const { body: manifestBytes, etag: manifestETag } = await getBytes(s3, { bucket, key: input.manifestKey });
  if (input.manifestETag && manifestETag && unquote(input.manifestETag) !== unquote(manifestETag)) {
    log.warn('dataset.json changed after this run started; using the current version', { started: input.manifestETag, current: manifestETag });
  }
  const manifestHash = createHash('sha256').update(manifestBytes).digest('hex');
  const manifest = parseManifest(Buffer.from(manifestBytes).toString('utf8'), { defaultName: input.dataset, source: input.manifestKey });
  const files = await listDataFiles(s3, bucket, input.dataset, manifest.format);
  const classification = manifest.task === 'classification';

  const maxShardBytes = options.maxShardBytes ?? 4 * 1024 * 1024;

  // Parse once: every row checked, rows counted per class, raw features spilled.
  let started = Date.now();
  const spilled = await parseAndSpill(s3, bucket, input.runId, files, manifest, { maxClasses: options.maxClasses ?? 1000, rowsPerShard: options.rowsPerShard, maxShardBytes });
  const { layout, classNames, groupSizes, finalId } = spilled;
  const width = layout.inputShape.reduce((a, b) => a * b, 1);
  log.info('parsed, checked and spilled', { rows: spilled.total, classes: classNames?.length, ms: Date.now() - started });

  const assignments = groupSizes.map((n, g) => drawAssignment(n, manifest.split, mix(manifest.split.seed, g)));
  const counts = { train: 0, validation: 0, test: 0 };
  for (const codes of assignments) for (const c of codes) counts[SPLIT_OF_CODE[c]] += 1;
  if (counts.test === 0) throw new DataError(`Too few rows: ${spilled.total} rows leave the test split empty (split.test ${manifest.split.test}).`);
  const groupOf = (y: number) => (classification ? finalId[y] : 0);

  // Mean and standard deviation of each feature over the training rows only.
  started = Date.now();
  const mean = new Float64Array(width);
  const m2 = new Float64Array(width);
  let n = 0;
  let seen = new Array<number>(groupSizes.length).fill(0);
  for await (const shard of readSpill(s3, bucket, spilled.shards)) {
    for (let r = 0; r < shard.rows; r++) {
      const g = groupOf(shard.y[r]);
      if (assignments[g][seen[g]++] !== TRAIN) continue;
      n += 1;
      const base = r * width;
      for (let i = 0; i < width; i++) {
        const v = shard.x[base + i];
        const delta = v - mean[i];
        mean[i] += delta / n;
        m2[i] += delta * (v - mean[i]);
      }
    }
  }
  const std = new Float64Array(width);
  // A constant feature has std 0; dividing by 1 keeps it at 0 after centring instead of NaN.
  for (let i = 0; i < width; i++) std[i] = Math.sqrt(m2[i] / n) > 1e-12 ? Math.sqrt(m2[i] / n) : 1;
  log.info('training statistics', { trainRows: n, ms: Date.now() - started });

  // Normalise and write the final shards, then drop the spill.
  started = Date.now();
  const rowsPerShard = rowsFor(width, { rowsPerShard: options.rowsPerShard, maxShardBytes });
  const writers = SPLITS.map(
    (split) =>
      new ShardWriter(s3, bucket, (part, i) => preparedKeys.shard(input.runId, split, part, i), width, layout.inputShape, rowsPerShard, classification, { mean, std }),
  );
  seen = seen.fill(0);
  for await (const shard of readSpill(s3, bucket, spilled.shards)) {
    for (let r = 0; r < shard.rows; r++) {
      const g = groupOf(shard.y[r]);
      const code = assignments[g][seen[g]++];
      await writers[code].add(shard.x, r * width, classification ? g : shard.y[r]);
    }
  }
  for (const w of writers) await w.flush();
  await deletePrefix(s3, bucket, `${preparedKeys.prefix(input.runId)}${SPILL}/`);
  log.info('shards written', { shards: writers.reduce((a, w) => a + w.shards.length, 0), ms: Date.now() - started });

  const stats: PreparedStats = {
    task: manifest.task,
    modelName: manifest.name,
    label: manifest.label,
    inputShape: layout.inputShape,
    // A nested array field has no per-value names; listing the field's name would mislead.
    ...(manifest.features.field === undefined ? { featureNames: layout.featureNames } : {}),
    ...(classNames ? { classNames } : {}),
    normalization: { mean: Array.from(mean), std: Array.from(std) },
    counts,
    shards: { train: writers[TRAIN].shards, validation: writers[VALIDATION].shards, test: writers[TEST].shards },
    sources: files.map((f) => ({ key: f.key, etag: f.etag })),
    manifestHash,
    seed: manifest.split.seed,
  };
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
