/**
 * Evaluate: run the exported ONNX model (what will serve) on the test split, compute metrics,
 * compare with the current production version by the manifest's promotion rule, and write
 * runs/<runId>/evaluation.json and report.html.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import * as ort from 'onnxruntime-node';
import type { EvaluateResult, RunState } from '../core/contracts';
import { BadRequestError, DataError, NotFoundError } from '../core/errors';
import { decidePromotion, type Champion, type PromotionDecision } from '../core/gate';
import { modelKeys, preparedKeys, runKeys } from '../core/layout';
import { logger } from '../core/logger';
import { parseManifest, type ResolvedManifest } from '../core/manifest';
import { INPUT_NAME, OUTPUT_NAME, runOnnxSession } from '../core/onnx';
import { classificationMetrics, regressionMetrics, scalarMetrics, type EvaluationMetrics } from '../core/metrics';
import { iterateSplit, loadStats, type PreparedStats } from '../core/prepared';
import { parseHistory, renderReport } from '../core/report';
import { getBytes, getJson, getJsonIfExists, putBytes, putJson } from '../core/s3';

export interface EvaluateOptions {
  /** Bucket of the model registry, where the champion's alias and manifest live. */
  readonly modelBucket: string;
  /** Rows per ONNX Runtime call. @default 512 */
  readonly batchSize?: number;
  /** @default - the current time */
  readonly now?: Date;
}

/** `runs/<runId>/evaluation.json` */
export interface EvaluationRecord {
  readonly runId: string;
  readonly model: string;
  readonly task: string;
  readonly onnxKey: string;
  readonly testRows: number;
  readonly metrics: Record<string, number>;
  /** Per-class scores and the confusion matrix (classification), as computed. */
  readonly detail: EvaluationMetrics;
  readonly rule: ResolvedManifest['promotion'];
  readonly champion?: Champion;
  readonly decision: PromotionDecision;
  readonly evaluatedAt: string;
}

/** ONNX Runtime over the test shards, one shard in memory at a time; returns the flat outputs. */
export async function predictSplit(s3: S3Client, bucket: string, stats: PreparedStats, onnx: Uint8Array, batchSize = 512): Promise<{ outputs: Float32Array; labels: Int32Array | Float32Array; outputWidth: number }> {
  const session = await ort.InferenceSession.create(onnx);
  try {
    if (!session.inputNames.includes(INPUT_NAME) || !session.outputNames.includes(OUTPUT_NAME)) {
      throw new DataError(`The ONNX model must have input "${INPUT_NAME}" and output "${OUTPUT_NAME}"; it has inputs ${session.inputNames.join(', ')} and outputs ${session.outputNames.join(', ')}.`);
    }
    const total = stats.counts.test;
    const labels = stats.task === 'classification' ? new Int32Array(total) : new Float32Array(total);
    let outputs: Float32Array | undefined;
    let outputWidth = 0;
    let at = 0;
    for await (const shard of iterateSplit(s3, bucket, stats, 'test')) {
      const { output } = await runOnnxSession(session, shard.x, [shard.rows, ...stats.inputShape], batchSize);
      if (outputs === undefined) {
        outputWidth = output.length / shard.rows;
        outputs = new Float32Array(total * outputWidth);
      }
      if (output.length !== shard.rows * outputWidth) throw new DataError(`ONNX output for ${shard.rows} rows has ${output.length} values; expected ${shard.rows * outputWidth}.`);
      outputs.set(output, at * outputWidth);
      labels.set(shard.y, at);
      at += shard.rows;
    }
    if (at !== total) throw new DataError(`The test shards hold ${at} rows, stats.json counts ${total}.`);
    return { outputs: outputs ?? new Float32Array(0), labels, outputWidth };
  } finally {
    await session.release();
  }
}

/** The model's current holder of the rule's alias: its version and metrics, or undefined when none. */
export async function readChampion(s3: S3Client, modelBucket: string, model: string, alias: string): Promise<Champion | undefined> {
  const pointer = await getJsonIfExists<{ version?: unknown }>(s3, { bucket: modelBucket, key: modelKeys.alias(model, alias) });
  if (pointer === undefined) return undefined;
  const version = pointer.value.version;
  if (typeof version !== 'string' || version === '') {
    throw new DataError(`${modelKeys.alias(model, alias)}: expected "version" to be a version string, received ${JSON.stringify(version)}.`);
  }
  let manifest: { metrics?: Record<string, unknown> };
  try {
    manifest = (await getJson<{ metrics?: Record<string, unknown> }>(s3, { bucket: modelBucket, key: modelKeys.versionManifest(model, version) })).value;
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new NotFoundError(`Alias ${alias} of ${model} points to version ${version}, whose manifest ${modelKeys.versionManifest(model, version)} does not exist.`, { cause: error });
    }
    throw error;
  }
  const metrics: Record<string, number> = {};
  for (const [name, value] of Object.entries(manifest.metrics ?? {})) if (typeof value === 'number') metrics[name] = value;
  return { version, metrics };
}

export async function evaluate(s3: S3Client, state: RunState, options: EvaluateOptions): Promise<EvaluateResult> {
  if (state.preprocess === undefined) throw new BadRequestError('Evaluate event: expected "preprocess" (the Preprocess result), received nothing.');
  const runId = state.runId;
  const bucket = state.bucket;
  const log = logger.createChild({ persistentKeys: { runId } });
  const stats = await loadStats(s3, bucket, runId);
  const manifest = parseManifest((await getJson(s3, { bucket, key: preparedKeys.manifest(runId) })).value, { source: preparedKeys.manifest(runId) });
  const onnxKey = state.export?.onnxKey ?? runKeys.onnx(runId);
  const { body: onnx } = await getBytes(s3, { bucket, key: onnxKey });

  const started = Date.now();
  const { outputs, labels, outputWidth } = await predictSplit(s3, bucket, stats, onnx, options.batchSize);
  let metrics: EvaluationMetrics;
  if (stats.task === 'classification') {
    const classNames = stats.classNames ?? [];
    if (outputWidth !== classNames.length) {
      throw new DataError(`The ONNX model outputs ${outputWidth} values per row; the dataset has ${classNames.length} classes (${classNames.join(', ')}).`);
    }
    metrics = classificationMetrics(labels as Int32Array, outputs, classNames);
  } else {
    if (outputWidth !== 1) throw new DataError(`A regression model must output one value per row; the ONNX model outputs ${outputWidth}.`);
    metrics = regressionMetrics(labels, outputs);
  }
  const scalars = scalarMetrics(metrics);
  log.info('test split evaluated', { rows: metrics.rows, ms: Date.now() - started, ...scalars });

  const rule = manifest.promotion;
  const champion = await readChampion(s3, options.modelBucket, stats.modelName, rule.alias);
  const decision = decidePromotion(rule, scalars, champion);
  log.info('promotion decided', { promote: decision.promote, reason: decision.reason, champion: champion?.version });

  const history = await getJsonIfExists(s3, { bucket, key: runKeys.history(runId) });
  const evaluatedAt = (options.now ?? new Date()).toISOString();
  const record: EvaluationRecord = {
    runId,
    model: stats.modelName,
    task: stats.task,
    onnxKey,
    testRows: metrics.rows,
    metrics: scalars,
    detail: metrics,
    rule,
    ...(champion ? { champion } : {}),
    decision,
    evaluatedAt,
  };
  const html = renderReport(
    {
      runId,
      modelName: stats.modelName,
      task: stats.task,
      dataset: state.dataset,
      generatedAt: evaluatedAt,
      metrics,
      history: parseHistory(history?.value),
      decision,
      rule,
      champion,
      counts: stats.counts,
      parity: state.export?.parity,
    },
    scalars,
  );
  const evaluationKey = runKeys.evaluation(runId);
  const reportKey = runKeys.report(runId);
  await putJson(s3, { bucket, key: evaluationKey }, record);
  await putBytes(s3, { bucket, key: reportKey }, html, { contentType: 'text/html; charset=utf-8' });
  return {
    metrics: scalars,
    ...(champion ? { champion } : {}),
    promote: decision.promote,
    reason: decision.reason,
    evaluationKey,
    reportKey,
  };
}
