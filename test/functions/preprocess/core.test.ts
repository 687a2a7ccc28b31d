import { createHash } from 'node:crypto';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { ManifestError, DataError, NotFoundError } from '../../../functions/core/errors';
import { preparedKeys } from '../../../functions/core/layout';
import { loadSplit, loadStats } from '../../../functions/core/prepared';
import { decodeNpy } from '../../../functions/core/npy';
import { getBytes, getJson, listObjects, putBytes } from '../../../functions/core/s3';
import { preprocess, drawAssignment, sortClassNames } from '../../../functions/preprocess/core';
import type { RunInput } from '../../../functions/core/contracts';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

let fx: S3Fixture;
beforeAll(async () => {
  fx = await localS3Fixture();
});
afterAll(async () => fx.close());

let counter = 0;
/** Uploads data files (name -> content) then dataset.json, as a user would; returns the run input. */
async function dataset(manifest: unknown, files: Record<string, string | Buffer>): Promise<RunInput> {
  counter += 1;
  const name = `ds${counter}`;
  for (const [file, body] of Object.entries(files)) await putBytes(fx.s3, { bucket: DATA_BUCKET, key: `datasets/${name}/data/${file}` }, body);
  const manifestKey = `datasets/${name}/dataset.json`;
  const text = typeof manifest === 'string' ? manifest : JSON.stringify(manifest);
  const { etag } = await putBytes(fx.s3, { bucket: DATA_BUCKET, key: manifestKey }, text);
  return { runId: `run-${name}`, dataset: name, bucket: DATA_BUCKET, manifestKey, manifestETag: etag };
}

const csvManifest = { task: 'classification', format: 'csv', label: 'y' };

/** Rows of a 3-class CSV: 50 "a", 30 "b", 20 "c"; `id` is unique so a test can tell rows apart. */
function threeClassCsv(): string {
  const lines = ['id,f1,f2,y'];
  let id = 0;
  for (const [cls, n, offset] of [['a', 50, 0], ['b', 30, 10], ['c', 20, 100]] as const) {
    for (let i = 0; i < n; i++) lines.push(`${id++},${offset + (i % 7)},${(i * 13) % 5},${cls}`);
  }
  return lines.join('\n') + '\n';
}

async function preparedObjects(runId: string): Promise<string[]> {
  return (await listObjects(fx.s3, DATA_BUCKET, preparedKeys.prefix(runId))).map((o) => o.key);
}

async function failure(input: RunInput, options = {}): Promise<Error> {
  try {
    await preprocess(fx.s3, input, options);
  } catch (error) {
    expect(await preparedObjects(input.runId)).toEqual([]);
    return error as Error;
  }
  throw new Error('preprocess succeeded but a failure was expected');
}

describe('preprocess: good data', () => {
  test('CSV with BOM, CRLF and quoted fields is read; stats.json follows the contract', async () => {
    // Given
    const rows = ['\uFEFFsepal length,"petal, width",species'];
    for (let i = 0; i < 20; i++) rows.push(`${5 + i / 10},"${(i % 4) / 2}",${i % 2 === 0 ? '"Iris setosa"' : 'versicolor'}`);
    const input = await dataset({ ...csvManifest, label: 'species', name: 'iris' }, { 'iris.csv': rows.join('\r\n') + '\r\n' });
    // When
    const result = await preprocess(fx.s3, input);
    // Then
    const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
    expect(result).toEqual({
      modelName: 'iris',
      task: 'classification',
      preparedPrefix: `prepared/${input.runId}/`,
      statsKey: `prepared/${input.runId}/stats.json`,
      inputShape: [2],
      classNames: ['Iris setosa', 'versicolor'],
      counts: { train: 14, validation: 2, test: 4 },
    });
    expect(stats.featureNames).toEqual(['sepal length', 'petal, width']);
    expect(stats.classNames).toEqual(['Iris setosa', 'versicolor']);
    expect(stats.label).toBe('species');
    expect(stats.counts).toEqual(result.counts);
    expect(stats.seed).toBe(42);
    const manifestBytes = (await getBytes(fx.s3, { bucket: DATA_BUCKET, key: input.manifestKey })).body;
    expect(stats.manifestHash).toBe(createHash('sha256').update(manifestBytes).digest('hex'));
    const [source] = await listObjects(fx.s3, DATA_BUCKET, `datasets/${input.dataset}/data/`);
    expect(stats.sources).toEqual([{ key: source.key, etag: source.etag }]);
    expect(stats.normalization.std.every((s) => s > 0)).toBe(true);
    const resolved = (await getJson<Record<string, unknown>>(fx.s3, { bucket: DATA_BUCKET, key: preparedKeys.manifest(input.runId) })).value;
    expect(resolved).toMatchObject({ name: 'iris', split: { validation: 0.1, test: 0.2, seed: 42 }, promotion: { metric: 'accuracy' } });
    const test = await loadSplit(fx.s3, DATA_BUCKET, stats, 'test');
    expect(test.rows).toBe(4);
    expect(test.y).toBeInstanceOf(Int32Array);
    // Every row of class 0 ("Iris setosa") has an even index in the file; raw petal value is in {0, 1}.
    const raw = Array.from({ length: 4 }, (_, r) => test.x[r * 2 + 1] * stats.normalization.std[1] + stats.normalization.mean[1]);
    for (const v of raw) expect([0, 0.5, 1, 1.5].some((ok) => Math.abs(ok - v) < 1e-5)).toBe(true);
  });

  test('the split is stratified: each class keeps the 0.7/0.1/0.2 proportions exactly', async () => {
    const input = await dataset(csvManifest, { 'data.csv': threeClassCsv() });
    const result = await preprocess(fx.s3, input, { rowsPerShard: 16 });
    const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
    expect(result.counts).toEqual({ train: 70, validation: 10, test: 20 });
    const perClass = async (split: 'train' | 'validation' | 'test') => {
      const { y } = await loadSplit(fx.s3, DATA_BUCKET, stats, split);
      return [0, 1, 2].map((c) => Array.from(y).filter((v) => v === c).length);
    };
    expect(await perClass('test')).toEqual([10, 6, 4]);
    expect(await perClass('validation')).toEqual([5, 3, 2]);
    expect(await perClass('train')).toEqual([35, 21, 14]);
    // 70 training rows in shards of at most 16.
    expect(stats.shards.train.map((s) => s.rows)).toEqual([16, 16, 16, 16, 6]);
  });

  test('the split is deterministic for a seed and changes with it', async () => {
    const ids = async (input: RunInput) => {
      await preprocess(fx.s3, input);
      const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
      const { x, rows } = await loadSplit(fx.s3, DATA_BUCKET, stats, 'test');
      return Array.from({ length: rows }, (_, r) => Math.round(x[r * 3] * stats.normalization.std[0] + stats.normalization.mean[0]));
    };
    const first = await ids(await dataset(csvManifest, { 'data.csv': threeClassCsv() }));
    const again = await ids(await dataset(csvManifest, { 'data.csv': threeClassCsv() }));
    const otherSeed = await ids(await dataset({ ...csvManifest, split: { seed: 7 } }, { 'data.csv': threeClassCsv() }));
    expect(again).toEqual(first);
    expect(otherSeed).not.toEqual(first);
    expect(new Set(first).size).toBe(20);
  });

  test('normalisation statistics come from the training split only', async () => {
    // Given rows whose `id` feature identifies them after normalisation
    const input = await dataset(csvManifest, { 'data.csv': threeClassCsv() });
    await preprocess(fx.s3, input);
    const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
    const { mean, std } = stats.normalization;
    // When the training rows are recovered from their shards
    const train = await loadSplit(fx.s3, DATA_BUCKET, stats, 'train');
    const rawIds = Array.from({ length: train.rows }, (_, r) => Math.round(train.x[r * 3] * std[0] + mean[0]));
    const allRows = threeClassCsv().trim().split('\n').slice(1).map((l) => l.split(',').slice(0, 3).map(Number));
    const trainRows = rawIds.map((id) => allRows[id]);
    // Then mean/std are the training rows' population statistics, not the whole dataset's
    for (let f = 0; f < 3; f++) {
      const values = trainRows.map((r) => r[f]);
      const m = values.reduce((a, b) => a + b, 0) / values.length;
      const s = Math.sqrt(values.reduce((a, b) => a + (b - m) ** 2, 0) / values.length);
      expect(mean[f]).toBeCloseTo(m, 9);
      expect(std[f]).toBeCloseTo(s, 9);
    }
    const allMean = allRows.reduce((a, r) => a + r[0], 0) / allRows.length;
    expect(Math.abs(mean[0] - allMean)).toBeGreaterThan(1e-6);
    // and the normalised training features have mean 0
    const trainMean = Array.from({ length: train.rows }, (_, r) => train.x[r * 3 + 1]).reduce((a, b) => a + b, 0) / train.rows;
    expect(Math.abs(trainMean)).toBeLessThan(1e-5);
  });

  test('a constant feature gets std 1 (never 0)', async () => {
    const lines = ['c,v,y', ...Array.from({ length: 20 }, (_, i) => `3,${i},${i % 2}`)];
    const input = await dataset(csvManifest, { 'd.csv': lines.join('\n') });
    await preprocess(fx.s3, input);
    const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
    expect(stats.normalization.std[0]).toBe(1);
    expect(stats.normalization.mean[0]).toBe(3);
  });

  test('JSON Lines with a nested pixel array and a declared shape [2, 2, 1]', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify({ digit: i % 3, img: [[i, 1], [2, i % 5]] }));
    const input = await dataset(
      { task: 'classification', format: 'jsonl', label: 'digit', features: { field: 'img', shape: [2, 2, 1] } },
      { 'a.jsonl': lines.slice(0, 10).join('\r\n') + '\r\n\r\n', 'b.jsonl': lines.slice(10).join('\n') },
    );
    const result = await preprocess(fx.s3, input);
    const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
    expect(result.inputShape).toEqual([2, 2, 1]);
    expect(stats.featureNames).toBeUndefined();
    expect(result.classNames).toEqual(['0', '1', '2']);
    expect(stats.sources.map((s) => s.key)).toEqual([`datasets/${input.dataset}/data/a.jsonl`, `datasets/${input.dataset}/data/b.jsonl`]);
    const xShard = decodeNpy((await getBytes(fx.s3, { bucket: DATA_BUCKET, key: stats.shards.train[0].x })).body);
    expect(xShard.shape).toEqual([stats.shards.train[0].rows, 2, 2, 1]);
    expect(stats.normalization.mean).toHaveLength(4);
    expect(stats.normalization.mean[1]).toBe(1);
    expect(stats.normalization.std[1]).toBe(1);
  });

  test('JSON Lines regression with keys as features: float32 targets', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ a: i, b: i % 3, price: 2.5 * i + 1 }));
    const input = await dataset({ task: 'regression', format: 'jsonl', label: 'price', name: 'prices' }, { 'p.jsonl': lines.join('\n') });
    const result = await preprocess(fx.s3, input);
    const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
    expect(result.classNames).toBeUndefined();
    expect(stats.featureNames).toEqual(['a', 'b']);
    expect(result.counts).toEqual({ train: 28, validation: 4, test: 8 });
    const test = await loadSplit(fx.s3, DATA_BUCKET, stats, 'test');
    expect(test.y).toBeInstanceOf(Float32Array);
    // Targets stay in their own units; the id feature recovers which row each one came from.
    for (let r = 0; r < test.rows; r++) {
      const a = Math.round(test.x[r * 2] * stats.normalization.std[0] + stats.normalization.mean[0]);
      expect(test.y[r]).toBeCloseTo(2.5 * a + 1, 5);
    }
  });

  test('declared classes fix the class order', async () => {
    const lines = ['x,y', ...Array.from({ length: 20 }, (_, i) => `${i},${['low', 'high', 'mid'][i % 3]}`)];
    const input = await dataset({ ...csvManifest, classes: ['low', 'mid', 'high'] }, { 'd.csv': lines.join('\n') });
    expect((await preprocess(fx.s3, input)).classNames).toEqual(['low', 'mid', 'high']);
  });
});

describe('preprocess: bad input fails with a message naming file, row and value', () => {
  test('a manifest error lists every problem with field, expectation and value', async () => {
    const input = await dataset({ task: 'clasification', format: 'csv', label: 'y', split: { test: 2 } }, { 'd.csv': 'x,y\n1,a\n' });
    const error = await failure(input);
    expect(error).toBeInstanceOf(ManifestError);
    expect(error.message).toContain('task: expected "classification" or "regression", received "clasification"');
    expect(error.message).toContain('split.test: expected a number < 1, received 2');
  });

  test('a non-numeric value', async () => {
    const input = await dataset(csvManifest, { 'd.csv': 'a,b,y\n1,2,x\n3,abc,z\n' });
    const error = await failure(input);
    expect(error).toBeInstanceOf(DataError);
    expect(error.message).toBe(`datasets/${input.dataset}/data/d.csv, data row 2 (line 3): column "b" is not a number: received "abc"`);
  });

  test('a missing value', async () => {
    const input = await dataset(csvManifest, { 'd.csv': 'a,b,y\n1,2,x\n3,,z\n' });
    expect((await failure(input)).message).toBe(`datasets/${input.dataset}/data/d.csv, data row 2 (line 3): column "b" is missing a value (empty)`);
  });

  test('a missing label', async () => {
    const input = await dataset(csvManifest, { 'd.csv': 'a,b,y\n1,2,x\n3,4,\n' });
    expect((await failure(input)).message).toBe(`datasets/${input.dataset}/data/d.csv, data row 2 (line 3): label "y" is missing a value (empty)`);
  });

  test('a row of the wrong width', async () => {
    const input = await dataset(csvManifest, { 'd.csv': 'a,b,y\n1,2,x\n3,4,5,z\n' });
    expect((await failure(input)).message).toBe(`datasets/${input.dataset}/data/d.csv, data row 2 (line 3): wrong row width: 4 values, but the header has 3 columns`);
  });

  test('an unknown label when the manifest declares its classes', async () => {
    const input = await dataset({ ...csvManifest, classes: ['cat', 'dog'] }, { 'd.csv': 'a,y\n1,cat\n2,dog\n3,bird\n' });
    expect((await failure(input)).message).toBe(
      `datasets/${input.dataset}/data/d.csv, data row 3 (line 4): unknown label "bird" in column "y"; manifest.classes are "cat", "dog".`,
    );
  });

  test('an empty dataset (header only)', async () => {
    const input = await dataset(csvManifest, { 'd.csv': 'a,y\r\n' });
    expect((await failure(input)).message).toBe(`Empty dataset: no data rows in datasets/${input.dataset}/data/d.csv.`);
  });

  test('an empty dataset (no data files)', async () => {
    const input = await dataset(csvManifest, {});
    expect((await failure(input)).message).toBe(`Empty dataset: s3://${DATA_BUCKET}/datasets/${input.dataset}/data/ has no .csv files.`);
  });

  test('one class only', async () => {
    const input = await dataset(csvManifest, { 'd.csv': 'a,y\n1,cat\n2,cat\n' });
    expect((await failure(input)).message).toBe('Only one class: all 2 rows have label "y" = "cat"; classification needs at least two classes.');
  });

  test('a non-numeric regression label', async () => {
    const input = await dataset({ task: 'regression', format: 'csv', label: 'price' }, { 'd.csv': 'a,price\n1,2.5\n2,cheap\n' });
    expect((await failure(input)).message).toBe(
      `datasets/${input.dataset}/data/d.csv, data row 2 (line 3): label "price" must be a number for task "regression": received "cheap"`,
    );
  });

  test('a file of another format under data/ is an error naming it', async () => {
    const input = await dataset(csvManifest, { 'd.csv': 'a,y\n1,x\n2,z\n', 'notes.txt': 'hello' });
    expect((await failure(input)).message).toMatch(/holds 1 file\(s\) that are not \.csv \(the manifest's format\): notes\.txt/);
  });

  test('a declared shape whose product differs from the number of values', async () => {
    const input = await dataset({ ...csvManifest, features: { shape: [2, 2] } }, { 'd.csv': 'a,b,c,y\n1,2,3,x\n' });
    expect((await failure(input)).message).toBe(`datasets/${input.dataset}/data/d.csv: features.shape [2, 2] holds 4 values, but the header (feature columns) has 3.`);
  });

  test('a label column missing from the header', async () => {
    const input = await dataset({ ...csvManifest, label: 'class' }, { 'd.csv': 'a,y\n1,x\n' });
    expect((await failure(input)).message).toBe(`datasets/${input.dataset}/data/d.csv: the header has no label column "class" (columns: "a,y").`);
  });

  test('JSON Lines: invalid JSON, and a pixel array of the wrong size', async () => {
    const manifest = { task: 'classification', format: 'jsonl', label: 'l', features: { field: 'px', shape: [2, 2] } };
    const bad = await dataset(manifest, { 'd.jsonl': '{"l":1,"px":[[1,2],[3,4]]}\n{"l":2,"px":[[1,2],[3,4]]\n' });
    expect((await failure(bad)).message).toMatch(new RegExp(`^datasets/${bad.dataset}/data/d.jsonl, data row 2 \\(line 2\\): not valid JSON`));
    const narrow = await dataset(manifest, { 'd.jsonl': '{"l":1,"px":[[1,2],[3,4]]}\n\n{"l":2,"px":[[1,2],[3]]}\n' });
    expect((await failure(narrow)).message).toBe(
      `datasets/${narrow.dataset}/data/d.jsonl, data row 2 (line 3): wrong row width: field "px" has 3 values, expected 4 (shape [2, 2])`,
    );
  });

  test('JSON Lines: a missing and a non-numeric feature key', async () => {
    const manifest = { task: 'classification', format: 'jsonl', label: 'l' };
    const missing = await dataset(manifest, { 'd.jsonl': '{"a":1,"b":2,"l":"x"}\n{"a":1,"c":2,"l":"y"}\n' });
    expect((await failure(missing)).message).toBe(`datasets/${missing.dataset}/data/d.jsonl, data row 2 (line 2): column "b" is missing a value (undefined)`);
    const text = await dataset(manifest, { 'd.jsonl': '{"a":1,"b":2,"l":"x"}\n{"a":true,"b":2,"l":"y"}\n' });
    expect((await failure(text)).message).toBe(`datasets/${text.dataset}/data/d.jsonl, data row 2 (line 2): column "a" is not a number: received true`);
  });

  test('a later file without the first file\'s columns', async () => {
    const input = await dataset(csvManifest, { 'a.csv': 'a,b,y\n1,2,x\n', 'b.csv': 'a,y\n1,z\n' });
    expect((await failure(input)).message).toBe(`datasets/${input.dataset}/data/b.csv: the header has no column "b".`);
  });

  test('nothing partial is left when a failure happens after shards were written', async () => {
    // Given a spilled shard deleted as soon as the first final shard lands
    const input = await dataset(csvManifest, { 'a.csv': threeClassCsv() });
    const lastSpill = `prepared/${input.runId}/spill/x-00099.npy`;
    const written: string[] = [];
    const onEvent = (event: { Records?: Array<{ eventName?: string; s3?: { object?: { key?: string } } }> }) => {
      const record = event.Records?.[0];
      const key = decodeURIComponent(record?.s3?.object?.key ?? '');
      if (!record?.eventName?.startsWith('ObjectCreated') || !/^prepared\/[^/]+\/(train|validation|test)\//.test(key) || !key.includes(input.runId)) return;
      written.push(key);
      if (written.length === 1) void fx.s3.send(new DeleteObjectCommand({ Bucket: DATA_BUCKET, Key: lastSpill }));
    };
    fx.server.server.on('event', onEvent);
    try {
      // When
      const error = await failure(input, { rowsPerShard: 1 });
      // Then the failure names the missing object, final shards had been written, and failure() found none left
      expect(error).toBeInstanceOf(NotFoundError);
      expect(error.message).toBe(`s3://${DATA_BUCKET}/${lastSpill} does not exist.`);
      expect(written.length).toBeGreaterThan(0);
    } finally {
      fx.server.server.off('event', onEvent);
    }
  });

  test('a successful run leaves only stats.json, manifest.json and the split shards', async () => {
    const input = await dataset(csvManifest, { 'a.csv': threeClassCsv() });
    await preprocess(fx.s3, input, { rowsPerShard: 40 });
    const keys = (await preparedObjects(input.runId)).map((k) => k.slice(`prepared/${input.runId}/`.length)).sort();
    expect(keys).toEqual([
      'manifest.json',
      'stats.json',
      'test/x-00000.npy',
      'test/y-00000.npy',
      'train/x-00000.npy',
      'train/x-00001.npy',
      'train/y-00000.npy',
      'train/y-00001.npy',
      'validation/x-00000.npy',
      'validation/y-00000.npy',
    ]);
  });
});

describe('split helpers', () => {
  test('drawAssignment keeps at least one training row and exact counts', () => {
    const codes = drawAssignment(10, { validation: 0.1, test: 0.2 }, 1);
    expect([0, 1, 2].map((c) => codes.filter((v) => v === c).length)).toEqual([7, 1, 2]);
    expect(Array.from(drawAssignment(1, { validation: 0.4, test: 0.5 }, 1))).toEqual([0]);
  });

  test('class names sort numerically when every label is a number', () => {
    expect(sortClassNames(['10', '9', '1'])).toEqual(['1', '9', '10']);
    expect(sortClassNames(['b', 'B', 'a'])).toEqual(['B', 'a', 'b']);
  });
});
