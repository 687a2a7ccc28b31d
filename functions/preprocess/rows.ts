/**
 * Streams the rows of one data file (CSV with a header, or JSON Lines) as numeric features plus
 * a label, checking every value. Errors name the file, the 1-based data row (header and blank
 * lines not counted) and its line, the column and the value received.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { DataError } from '../core/errors';
import type { ResolvedManifest } from '../core/manifest';

export interface Row {
  /** The feature values, flattened row-major. */
  readonly values: Float64Array;
  /** Class name (classification, trimmed text) or target (regression). */
  readonly label: string | number;
  readonly row: number;
  readonly line: number;
  readonly file: string;
}

/**
 * The feature layout, fixed by the first file and enforced on every later one, so all rows
 * of a dataset have the same features in the same order.
 */
export interface FeatureLayout {
  /** CSV / JSONL columns in order; for a JSONL field, that field's name. */
  readonly featureNames: string[];
  readonly inputShape: number[];
  /** CSV only: the first file's header, compared with later files when columns are the default. */
  readonly header?: string[];
}

/** Shared across the files of one pass: the first file fixes the layout. */
export interface LayoutState {
  layout?: FeatureLayout;
}

const MAX_SHOWN = 60;
const show = (value: unknown): string => {
  const text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 3)}...` : text;
};

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

class Where {
  constructor(
    readonly file: string,
    readonly row: number,
    readonly line: number,
  ) {}
  error(message: string): DataError {
    return new DataError(`${this.file}, data row ${this.row} (line ${this.line}): ${message}`);
  }
}

function parseNumber(raw: string, column: string, at: Where): number {
  const text = raw.trim();
  if (text === '') throw at.error(`column "${column}" is missing a value (empty)`);
  const value = Number(text);
  if (!Number.isFinite(value)) throw at.error(`column "${column}" is not a number: received ${show(raw)}`);
  return value;
}

function jsonNumber(raw: unknown, column: string, at: Where): number {
  if (raw === undefined || raw === null || raw === '') throw at.error(`column "${column}" is missing a value (${raw === '' ? 'empty' : String(raw)})`);
  if (typeof raw === 'number' && Number.isFinite(raw)) return raw;
  if (typeof raw === 'string') return parseNumber(raw, column, at);
  throw at.error(`column "${column}" is not a number: received ${show(raw)}`);
}

function parseLabel(raw: unknown, manifest: ResolvedManifest, at: Where): string | number {
  const column = manifest.label;
  if (raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')) {
    throw at.error(`label "${column}" is missing a value (${raw === undefined || raw === null ? String(raw) : 'empty'})`);
  }
  if (manifest.task === 'regression') {
    const value = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw.trim()) : NaN;
    if (!Number.isFinite(value)) throw at.error(`label "${column}" must be a number for task "regression": received ${show(raw)}`);
    return value;
  }
  if (typeof raw === 'object') throw at.error(`label "${column}" must be a text or number: received ${show(raw)}`);
  return String(raw).trim();
}

function checkShape(shape: readonly number[], count: number, what: string, file: string): void {
  if (product(shape) !== count) {
    throw new DataError(`${file}: features.shape [${shape.join(', ')}] holds ${product(shape)} values, but ${what} has ${count}.`);
  }
}

/** CSV rows: `header` decides the columns; `layout` (from an earlier file) must match it. */
export async function* csvRows(stream: Readable, file: string, manifest: ResolvedManifest, state: LayoutState): AsyncGenerator<Row> {
  const parser = stream.pipe(parse({ bom: true, relax_column_count: true, skip_empty_lines: true, info: true }));
  // A failure of the S3 stream must surface in the parser's iteration, not as an unhandled error.
  stream.on('error', (error) => parser.destroy(error));
  let header: string[] | undefined;
  let labelIndex = -1;
  let featureIndex: number[] = [];
  let layout: FeatureLayout | undefined = state.layout;
  let row = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (header === undefined) {
        header = record.map((h) => h.trim());
        const duplicate = header.find((h, i) => header!.indexOf(h) !== i);
        if (duplicate !== undefined) throw new DataError(`${file}: the header names column "${duplicate}" twice.`);
        labelIndex = header.indexOf(manifest.label);
        if (labelIndex < 0) throw new DataError(`${file}: the header has no label column "${manifest.label}" (columns: ${show(header.join(','))}).`);
        const defaultColumns = header.filter((_, i) => i !== labelIndex);
        const columns = manifest.features.columns ?? layout?.featureNames ?? defaultColumns;
        const missing = columns.filter((c) => !header!.includes(c));
        if (missing.length > 0) throw new DataError(`${file}: the header has no column ${missing.slice(0, 5).map((c) => `"${c}"`).join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''}.`);
        if (layout?.header !== undefined && manifest.features.columns === undefined) {
          const extra = defaultColumns.filter((c) => !layout!.featureNames.includes(c));
          if (extra.length > 0) throw new DataError(`${file}: column ${show(extra[0])} is not in the first file's header; every file needs the same columns.`);
        }
        featureIndex = columns.map((c) => header!.indexOf(c));
        if (layout === undefined) {
          if (columns.length === 0) throw new DataError(`${file}: the header has only the label column "${manifest.label}"; there are no feature columns.`);
          const inputShape = manifest.features.shape ?? [columns.length];
          checkShape(inputShape, columns.length, 'the header (feature columns)', file);
          layout = { featureNames: [...columns], inputShape: [...inputShape], header };
          state.layout = layout;
        }
        continue;
      }
      row += 1;
      const line = info.lines;
      const at = new Where(file, row, line);
      if (record.length !== header.length) throw at.error(`wrong row width: ${record.length} values, but the header has ${header.length} columns`);
      const values = new Float64Array(featureIndex.length);
      for (let i = 0; i < featureIndex.length; i++) values[i] = parseNumber(record[featureIndex[i]], header[featureIndex[i]], at);
      yield { values, label: parseLabel(record[labelIndex], manifest, at), row, line, file };
    }
  } catch (error) {
    if (error instanceof DataError) throw error;
    const message = (error as Error).message;
    if ((error as { code?: string }).code?.startsWith('CSV_')) throw new DataError(`${file}: not valid CSV after data row ${row}: ${message}`, { cause: error });
    throw error;
  }
}

function flatten(value: unknown, out: number[], column: string, at: Where, dims: number[], depth: number): void {
  if (Array.isArray(value)) {
    if (dims.length === depth) dims.push(value.length);
    for (const item of value) flatten(item, out, column, at, dims, depth + 1);
    return;
  }
  out.push(jsonNumber(value, column, at));
}

/** JSON Lines rows: one object per line, features in `features.field` (nested array) or in keys. */
export async function* jsonlRows(stream: Readable, file: string, manifest: ResolvedManifest, state: LayoutState): AsyncGenerator<Row> {
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  stream.on('error', (error) => lines.emit('error', error));
  let layout: FeatureLayout | undefined = state.layout;
  let row = 0;
  let line = 0;
  const field = manifest.features.field;
  for await (let text of lines) {
    line += 1;
    if (line === 1) text = text.replace(/^\uFEFF/, '');
    if (text.trim() === '') continue;
    row += 1;
    const at = new Where(file, row, line);
    let object: unknown;
    try {
      object = JSON.parse(text);
    } catch (error) {
      throw at.error(`not valid JSON (${(error as Error).message}): ${show(text)}`);
    }
    if (object === null || typeof object !== 'object' || Array.isArray(object)) throw at.error(`expected a JSON object, received ${show(object)}`);
    const record = object as Record<string, unknown>;
    let values: Float64Array;
    if (field !== undefined) {
      const raw = record[field];
      if (raw === undefined || raw === null) throw at.error(`field "${field}" is missing a value (${String(raw)})`);
      if (!Array.isArray(raw)) throw at.error(`field "${field}" must be a (nested) array of numbers: received ${show(raw)}`);
      const flat: number[] = [];
      const dims: number[] = [];
      flatten(raw, flat, field, at, dims, 0);
      if (layout === undefined) {
        const inputShape = manifest.features.shape ?? dims;
        if (product(inputShape) !== flat.length) {
          throw at.error(`features.shape [${inputShape.join(', ')}] holds ${product(inputShape)} values, but field "${field}" has ${flat.length}`);
        }
        layout = { featureNames: [field], inputShape: [...inputShape] };
        state.layout = layout;
      }
      const width = product(layout.inputShape);
      if (flat.length !== width) throw at.error(`wrong row width: field "${field}" has ${flat.length} values, expected ${width} (shape [${layout.inputShape.join(', ')}])`);
      values = Float64Array.from(flat);
    } else {
      if (layout === undefined) {
        const columns = manifest.features.columns ?? Object.keys(record).filter((k) => k !== manifest.label);
        if (columns.length === 0) throw at.error(`the object has only the label "${manifest.label}"; there are no feature keys`);
        const inputShape = manifest.features.shape ?? [columns.length];
        checkShape(inputShape, columns.length, 'the feature keys of its first row', file);
        layout = { featureNames: [...columns], inputShape: [...inputShape] };
        state.layout = layout;
      }
      if (manifest.features.columns === undefined) {
        const keys = Object.keys(record).length - (manifest.label in record ? 1 : 0);
        if (keys !== layout.featureNames.length) {
          throw at.error(`wrong row width: ${keys} feature keys, but the first row has ${layout.featureNames.length} (${show(layout.featureNames.join(','))})`);
        }
      }
      values = new Float64Array(layout.featureNames.length);
      for (let i = 0; i < values.length; i++) values[i] = jsonNumber(record[layout.featureNames[i]], layout.featureNames[i], at);
    }
    yield { values, label: parseLabel(record[manifest.label], manifest, at), row, line, file };
  }
}
