/**
 * The dataset manifest (`dataset.json`) and model spec: the types every step shares.
 * The schema that validates a manifest, with messages that name field, expectation and
 * value received, lives beside these types (parseManifest).
 */
import { z } from 'zod';
import type { Task } from './contracts';
import { ManifestError } from './errors';
import { METRIC_NAMES } from './metrics';

export type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh' | 'softmax' | 'elu' | 'selu' | 'softplus';
export type Padding = 'valid' | 'same';
export type Pair = number | [number, number];

export type LayerSpec =
  | { type: 'dense'; units: number; activation?: Activation; useBias?: boolean }
  | { type: 'conv2d'; filters: number; kernelSize: Pair; strides?: Pair; padding?: Padding; activation?: Activation; useBias?: boolean }
  | { type: 'maxPooling2d'; poolSize?: Pair; strides?: Pair; padding?: Padding }
  | { type: 'averagePooling2d'; poolSize?: Pair; strides?: Pair; padding?: Padding }
  | { type: 'flatten' }
  | { type: 'dropout'; rate: number }
  | { type: 'batchNormalization'; momentum?: number; epsilon?: number }
  | { type: 'globalAveragePooling2d' }
  | { type: 'activation'; activation: Activation };

export type LayerType = LayerSpec['type'];

export interface FeatureSpec {
  /** Numeric columns (CSV) or keys (JSON Lines), in order. @default every column but the label */
  readonly columns?: string[];
  /** JSON Lines only: one field holding a (nested) numeric array of `shape`. */
  readonly field?: string;
  /** Shape of one example, e.g. [28, 28, 1]; its product equals the number of values. @default [number of columns] */
  readonly shape?: number[];
}

export interface TrainingSpec {
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly learningRate?: number;
  readonly optimizer?: 'adam' | 'sgd' | 'rmsprop';
  readonly loss?: string;
  readonly metrics?: string[];
  readonly earlyStopping?: { readonly patience: number; readonly monitor?: string; readonly minDelta?: number };
  readonly seed?: number;
}

export interface SplitSpec {
  /** Fraction of rows for validation. @default 0.1 */
  readonly validation?: number;
  /** Fraction of rows for test. @default 0.2 */
  readonly test?: number;
  /** Seed of the (stratified, for classification) shuffle. @default 42 */
  readonly seed?: number;
}

export interface PromotionRule {
  /** Metric name as Evaluate reports it, e.g. accuracy, f1Macro, mse, r2. */
  readonly metric: string;
  /** The challenger's metric must reach this (at most this, for error metrics). */
  readonly minimum?: number;
  /** The challenger must beat the current production version by at least this much. */
  readonly minImprovement?: number;
  /** Alias moved on promotion. @default production */
  readonly alias?: string;
}

export interface DatasetManifest {
  /** Model name in the registry: lowercase letters, digits and dashes. */
  readonly name: string;
  readonly task: Task;
  readonly format: 'csv' | 'jsonl';
  readonly label: string;
  readonly features?: FeatureSpec;
  /** Class names in order; @default the sorted distinct labels seen in the data */
  readonly classes?: string[];
  readonly model?: LayerSpec[];
  readonly training?: TrainingSpec;
  readonly split?: SplitSpec;
  readonly promotion?: PromotionRule;
}

// ---------------------------------------------------------------------------------------------
// The schema and parseManifest.
// ---------------------------------------------------------------------------------------------

export const ACTIVATIONS: readonly Activation[] = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'elu', 'selu', 'softplus'];
export const LAYER_TYPES: readonly LayerType[] = [
  'dense',
  'conv2d',
  'maxPooling2d',
  'averagePooling2d',
  'flatten',
  'dropout',
  'batchNormalization',
  'globalAveragePooling2d',
  'activation',
];

/** Defaults parseManifest fills in; documented here so README and code agree. */
export const MANIFEST_DEFAULTS = {
  split: { validation: 0.1, test: 0.2, seed: 42 },
  /** The reference settings of the accuracy targets: Adam 1e-3, batch 64, 5 epochs. */
  training: { epochs: 5, batchSize: 64, learningRate: 0.001, optimizer: 'adam' as const },
  /** Without a rule, a challenger is promoted when it is no worse than production on the task's main metric. */
  promotion: {
    classification: { metric: 'accuracy', minImprovement: 0, alias: 'production' },
    regression: { metric: 'mse', minImprovement: 0, alias: 'production' },
  },
} as const;

/** A manifest as parseManifest returns it: validated, with every default resolved. */
export interface ResolvedManifest extends DatasetManifest {
  readonly features: FeatureSpec;
  readonly split: Required<SplitSpec>;
  readonly training: TrainingSpec & Required<Pick<TrainingSpec, 'epochs' | 'batchSize' | 'learningRate' | 'optimizer' | 'seed'>>;
  readonly promotion: PromotionRule & Required<Pick<PromotionRule, 'metric' | 'minImprovement' | 'alias'>>;
}

const positiveInt = z.number().int().positive();
const pair = z.union([positiveInt, z.tuple([positiveInt, positiveInt])]);
const activation = z.enum(ACTIVATIONS as [Activation, ...Activation[]]);
const padding = z.enum(['valid', 'same']);
const pooling = { poolSize: pair.optional(), strides: pair.optional(), padding: padding.optional() };

const layerSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('dense'), units: positiveInt, activation: activation.optional(), useBias: z.boolean().optional() }),
  z.strictObject({
    type: z.literal('conv2d'),
    filters: positiveInt,
    kernelSize: pair,
    strides: pair.optional(),
    padding: padding.optional(),
    activation: activation.optional(),
    useBias: z.boolean().optional(),
  }),
  z.strictObject({ type: z.literal('maxPooling2d'), ...pooling }),
  z.strictObject({ type: z.literal('averagePooling2d'), ...pooling }),
  z.strictObject({ type: z.literal('flatten') }),
  z.strictObject({ type: z.literal('dropout'), rate: z.number().min(0).max(0.99) }),
  z.strictObject({ type: z.literal('batchNormalization'), momentum: z.number().gt(0).lt(1).optional(), epsilon: z.number().positive().optional() }),
  z.strictObject({ type: z.literal('globalAveragePooling2d') }),
  z.strictObject({ type: z.literal('activation'), activation }),
]);

const fraction = z.number().min(0).lt(1);

const manifestSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'lowercase letters, digits and dashes (1-63 characters, no dash at either end)')
    .optional(),
  task: z.enum(['classification', 'regression']),
  format: z.enum(['csv', 'jsonl']),
  label: z.string().min(1),
  features: z
    .strictObject({
      columns: z.array(z.string().min(1)).min(1).optional(),
      field: z.string().min(1).optional(),
      shape: z.array(positiveInt).min(1).max(4).optional(),
    })
    .optional(),
  classes: z.array(z.string().min(1)).min(2).optional(),
  model: z.array(layerSchema).min(1).optional(),
  training: z
    .strictObject({
      epochs: z.number().int().min(1).max(10_000).optional(),
      batchSize: z.number().int().min(1).max(65_536).optional(),
      learningRate: z.number().positive().max(10).optional(),
      optimizer: z.enum(['adam', 'sgd', 'rmsprop']).optional(),
      loss: z.string().min(1).optional(),
      metrics: z.array(z.string().min(1)).optional(),
      earlyStopping: z
        .strictObject({ patience: z.number().int().min(1), monitor: z.string().min(1).optional(), minDelta: z.number().min(0).optional() })
        .optional(),
      seed: z.number().int().min(0).optional(),
    })
    .optional(),
  split: z.strictObject({ validation: fraction.optional(), test: z.number().gt(0).lt(1).optional(), seed: z.number().int().min(0).optional() }).optional(),
  promotion: z
    .strictObject({
      metric: z.string().min(1),
      minimum: z.number().optional(),
      minImprovement: z.number().min(0).optional(),
      alias: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes').optional(),
    })
    .optional(),
});

type ManifestInput = z.infer<typeof manifestSchema>;

function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out === '' ? '(top level)' : out;
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

const quoted = (values: readonly unknown[]) =>
  values.length === 2 ? `${JSON.stringify(values[0])} or ${JSON.stringify(values[1])}` : `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;

/** One zod issue as `field: expected ..., received ...`. */
function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const where = fieldPath(issue.path);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'invalid_type':
      return `${where}: expected ${article(issue.expected)}, received ${shown(input)}`;
    case 'invalid_value':
      return `${where}: expected ${quoted(issue.values)}, received ${shown(input)}`;
    case 'invalid_union': {
      const note = issue as { discriminator?: string; options?: unknown[] };
      if (note.discriminator !== undefined && note.options !== undefined) {
        const got = input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[note.discriminator] : input;
        return `${where}: expected ${quoted(note.options)}, received ${shown(got)}`;
      }
      return `${where}: expected a valid value, received ${shown(input)}`;
    }
    case 'too_small':
    case 'too_big': {
      const op = issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const what = issue.origin === 'array' ? `a list of ${op} ${bound} items` : issue.origin === 'string' ? `a text of ${op} ${bound} characters` : `a number ${op} ${bound}`;
      return `${where}: expected ${what}, received ${shown(input)}`;
    }
    case 'unrecognized_keys': {
      const known = objectKeysAt(issue.path);
      return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}${known ? ` (expected one of ${known.join(', ')})` : ''}`;
    }
    case 'invalid_format':
      return `${where}: expected ${issue.message ?? issue.format}, received ${shown(input)}`;
    default:
      return `${where}: ${issue.message}, received ${shown(input ?? valueAt(root, issue.path))}`;
  }
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let at: unknown = root;
  for (const part of path) at = at !== null && typeof at === 'object' ? (at as Record<PropertyKey, unknown>)[part] : undefined;
  return at;
}

/** The allowed keys of the (non-layer) object at a path, for "unknown field" hints. */
function objectKeysAt(path: ReadonlyArray<PropertyKey>): string[] | undefined {
  if (path.length === 0) return Object.keys(manifestSchema.shape);
  if (path.length === 1) {
    const field = manifestSchema.shape[path[0] as keyof typeof manifestSchema.shape];
    const inner = (field as { unwrap?: () => unknown }).unwrap?.();
    const shape = (inner as { shape?: Record<string, unknown> } | undefined)?.shape;
    return shape ? Object.keys(shape) : undefined;
  }
  return undefined;
}

/** Checks that need several fields at once; only run when the shape is right. */
function crossFieldErrors(m: ManifestInput): string[] {
  const errors: string[] = [];
  const f = m.features;
  if (f?.field !== undefined && m.format !== 'jsonl') {
    errors.push(`features.field: expected only with format "jsonl" (CSV pixel arrays are many columns: use features.columns or the default), received ${shown(f.field)} with format "${m.format}"`);
  }
  if (f?.field !== undefined && f.columns !== undefined) {
    errors.push(`features: expected either "columns" or "field", received both`);
  }
  if (f?.columns !== undefined) {
    const seen = new Set<string>();
    for (const [i, c] of f.columns.entries()) {
      if (c === m.label) errors.push(`features.columns[${i}]: expected a column other than the label "${m.label}", received ${shown(c)}`);
      if (seen.has(c)) errors.push(`features.columns[${i}]: expected each column once, received ${shown(c)} again`);
      seen.add(c);
    }
    if (f.shape !== undefined) {
      const size = f.shape.reduce((a, b) => a * b, 1);
      if (size !== f.columns.length) {
        errors.push(`features.shape: expected dimensions whose product equals the ${f.columns.length} columns, received ${shown(f.shape)} (product ${size})`);
      }
    }
  }
  if (m.classes !== undefined) {
    if (m.task !== 'classification') errors.push(`classes: expected only with task "classification", received ${shown(m.classes)} with task "${m.task}"`);
    const seen = new Set<string>();
    for (const [i, c] of m.classes.entries()) {
      if (seen.has(c)) errors.push(`classes[${i}]: expected each class once, received ${shown(c)} again`);
      seen.add(c);
    }
  }
  const validation = m.split?.validation ?? MANIFEST_DEFAULTS.split.validation;
  const test = m.split?.test ?? MANIFEST_DEFAULTS.split.test;
  if (validation + test >= 1) {
    errors.push(`split: expected validation + test < 1 (the rest trains), received validation ${validation} + test ${test} = ${validation + test}`);
  }
  if (m.promotion !== undefined && !METRIC_NAMES[m.task].includes(m.promotion.metric)) {
    errors.push(`promotion.metric: expected ${quoted(METRIC_NAMES[m.task])} for task "${m.task}", received ${shown(m.promotion.metric)}`);
  }
  return errors;
}

export interface ParseManifestOptions {
  /** Model name when the manifest has none (Preprocess passes the dataset's folder name). */
  readonly defaultName?: string;
  /** Names the manifest in messages. @default dataset.json */
  readonly source?: string;
}

/**
 * Validates a manifest (its JSON text or the parsed value) and resolves every default.
 * Throws one ManifestError listing every problem, each as `field: expected ..., received ...`.
 */
export function parseManifest(input: string | unknown, options: ParseManifestOptions = {}): ResolvedManifest {
  const source = options.source ?? 'dataset.json';
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input.replace(/^\uFEFF/, ''));
    } catch (error) {
      throw new ManifestError(`${source} is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ManifestError(`${source}: expected a JSON object, received ${shown(value)}`);
  }
  const parsed = manifestSchema.safeParse(value, { reportInput: true });
  const problems = parsed.success ? crossFieldErrors(parsed.data) : parsed.error.issues.map((i) => describeIssue(i, value));
  const name = parsed.success ? (parsed.data.name ?? options.defaultName) : undefined;
  if (parsed.success && name === undefined) problems.push(`name: expected the model name (lowercase letters, digits and dashes), received nothing (the field is missing)`);
  if (parsed.success && name !== undefined && parsed.data.name === undefined && !manifestSchema.shape.name.safeParse(name).success) {
    problems.push(`name: the manifest has no name and the dataset name ${shown(name)} is not a valid model name; add "name" (lowercase letters, digits and dashes)`);
  }
  if (problems.length > 0 || !parsed.success) {
    const list = problems.length === 1 ? problems[0] : `${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`;
    throw new ManifestError(`${source} is invalid: ${list}`);
  }
  const m = parsed.data;
  const split = { ...MANIFEST_DEFAULTS.split, ...m.split };
  return {
    ...m,
    name: name!,
    features: m.features ?? {},
    split,
    training: { ...MANIFEST_DEFAULTS.training, seed: split.seed, ...m.training },
    promotion: { ...MANIFEST_DEFAULTS.promotion[m.task], ...m.promotion },
  } as ResolvedManifest;
}
