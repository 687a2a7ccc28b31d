/**
 * The Export step: the run's trained TF.js layers model -> `runs/<runId>/export/model.onnx`,
 * proven against TF.js in ONNX Runtime on held-out rows before anything is written.
 * The TF.js artifacts stay where Train wrote them (`runs/<runId>/model/`) as the second format.
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Tf } from '../core/backend';
import type { ExportResult, RunState } from '../core/contracts';
import { BadRequestError, DataError } from '../core/errors';
import { runKeys } from '../core/layout';
import { logger } from '../core/logger';
import { checkParity, DEFAULT_TOLERANCE, exportLayersModel, type OnnxExport } from '../core/onnx';
import { featureCount, iterateSplit, loadStats, type PreparedStats, type SplitName } from '../core/prepared';
import { putBytes, putJson } from '../core/s3';
import { loadModelFromS3 } from '../core/tfjs-io';

/** The floor: parity is measured on at least this many rows. */
export const MIN_PARITY_ROWS = 100;

export interface ExportDeps {
  readonly s3: S3Client;
  readonly tf: Tf;
}

export interface ExportOptions {
  /**
   * Rows compared in the parity check (held-out rows first; see parityRows).
   * @default 1000
   */
  readonly parityRows?: number;
  /**
   * Largest allowed |ONNX - TF.js|.
   * @default 1e-4
   */
  readonly tolerance?: number;
  /**
   * Recorded as the ONNX model's producer_version.
   * @default '0'
   */
  readonly codeVersion?: string;
}

/** Where the parity rows came from. */
export interface ParityRowSources {
  readonly test: number;
  readonly validation: number;
  readonly train: number;
  /** Seeded standard-normal rows, used only when the dataset has fewer rows than the floor. */
  readonly synthetic: number;
}

/** `runs/<runId>/export/export.json`: the ExportResult plus what the registry and people want to know. */
export interface ExportRecord extends ExportResult {
  readonly irVersion: number;
  readonly producer: string;
  readonly input: { readonly name: string; readonly dtype: 'float32'; readonly shape: Array<number | string> };
  readonly output: { readonly name: string; readonly dtype: 'float32'; readonly shape: Array<number | string> };
  readonly operators: string[];
  readonly onnx: { readonly sha256: string; readonly bytes: number };
  readonly parityRowSources: ParityRowSources;
  readonly exportedAt: string;
}

/** Checks the Step Functions event (the RunState) for what Export reads; names a bad field. */
export function parseExportEvent(event: unknown): RunState {
  const e = (event ?? {}) as Record<string, unknown>;
  for (const field of ['runId', 'bucket'] as const) {
    if (typeof e[field] !== 'string' || e[field] === '') {
      throw new BadRequestError(`Export event: expected "${field}" to be a non-empty string, received ${JSON.stringify(e[field])}.`);
    }
  }
  return e as unknown as RunState;
}

/** Seeded N(0, 1) values (Box-Muller over a 32-bit LCG): the distribution normalised features have. */
function syntheticRows(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0 || 1;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 1) / 2 ** 32;
  };
  for (let i = 0; i < count; i++) out[i] = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

/**
 * The parity rows: the test split first, then validation, then train, up to `wanted` (at least
 * MIN_PARITY_ROWS); topped up
 * with seeded synthetic rows only if the whole dataset is smaller than MIN_PARITY_ROWS.
 */
export async function parityRows(s3: S3Client, bucket: string, stats: PreparedStats, wanted: number): Promise<{ x: Float32Array; rows: number; sources: ParityRowSources }> {
  const width = featureCount(stats.inputShape);
  const target = Math.max(wanted, MIN_PARITY_ROWS);
  const x = new Float32Array(target * width);
  const taken: Record<SplitName, number> = { test: 0, validation: 0, train: 0 };
  let rows = 0;
  for (const split of ['test', 'validation', 'train'] as const) {
    if (rows >= target) break;
    for await (const shard of iterateSplit(s3, bucket, stats, split)) {
      const n = Math.min(shard.rows, target - rows);
      x.set(shard.x.subarray(0, n * width), rows * width);
      rows += n;
      taken[split] += n;
      // Stop before the generator fetches another shard.
      if (rows >= target) break;
    }
  }
  let synthetic = 0;
  if (rows < MIN_PARITY_ROWS) {
    synthetic = MIN_PARITY_ROWS - rows;
    x.set(syntheticRows(synthetic * width, stats.seed), rows * width);
    rows += synthetic;
  }
  return { x: x.subarray(0, rows * width), rows, sources: { ...taken, synthetic } };
}

function sameShape(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Runs the Export step for one run and returns its ExportResult (stored by the state machine at $.export). */
export async function exportRun(state: RunState, deps: ExportDeps, options: ExportOptions = {}): Promise<ExportResult> {
  const { s3, tf } = deps;
  const { runId, bucket } = state;
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
  const stats = await loadStats(s3, bucket, runId);
  const tfjsPrefix = runKeys.model(runId);
  const model = await loadModelFromS3(tf, s3, bucket, tfjsPrefix);
  try {
    const modelInput = model.inputs[0]?.shape.slice(1) ?? [];
    if (!sameShape(modelInput, stats.inputShape)) {
      throw new DataError(
        `The model at s3://${bucket}/${tfjsPrefix} takes input [${modelInput.join(', ')}] but prepared/${runId}/stats.json says inputShape [${stats.inputShape.join(', ')}].`,
      );
    }
    const exported: OnnxExport = exportLayersModel(model, {
      graphName: stats.modelName,
      producerVersion: options.codeVersion ?? '0',
      // What a server holding only the .onnx file needs to feed it raw rows and name its outputs.
      metadata: {
        'dlops.runId': runId,
        'dlops.modelName': stats.modelName,
        'dlops.task': stats.task,
        'dlops.manifestHash': stats.manifestHash,
        'dlops.normalization': JSON.stringify(stats.normalization),
        ...(stats.classNames === undefined ? {} : { 'dlops.classNames': JSON.stringify(stats.classNames) }),
      },
    });

    const sample = await parityRows(s3, bucket, stats, options.parityRows ?? 1000);
    const parity = await checkParity(tf, model, exported.bytes, sample.x, [sample.rows, ...stats.inputShape], { tolerance });
    logger.info('ONNX parity', { runId, ...parity, sources: sample.sources, operators: exported.opTypes.length });

    const onnxKey = runKeys.onnx(runId);
    const result: ExportResult = { onnxKey, tfjsPrefix, opset: exported.opset, parity };
    const record: ExportRecord = {
      ...result,
      irVersion: exported.irVersion,
      producer: exported.model.producerName,
      input: { name: exported.model.graph.inputs[0]!.name, dtype: 'float32', shape: exported.inputShape },
      output: { name: exported.model.graph.outputs[0]!.name, dtype: 'float32', shape: exported.outputShape },
      operators: [...new Set(exported.opTypes)],
      onnx: { sha256: createHash('sha256').update(exported.bytes).digest('hex'), bytes: exported.bytes.byteLength },
      parityRowSources: sample.sources,
      exportedAt: new Date().toISOString(),
    };
    // The model first, the record last: export.json existing means model.onnx is complete.
    await putBytes(s3, { bucket, key: onnxKey }, exported.bytes, { contentType: 'application/octet-stream' });
    await putJson(s3, { bucket, key: runKeys.exportResult(runId) }, record);
    return result;
  } finally {
    model.dispose();
  }
}
