/**
 * The Register step: publishes a run's exported model as the next encrypted version of its
 * model and, when the gate promoted it, moves the promotion alias with a conditional write.
 *
 * Reads   prepared/<runId>/stats.json, prepared/<runId>/manifest.json (promotion alias),
 *         runs/<runId>/export/model.onnx, runs/<runId>/model/{model.json, weights.bin}
 * Writes  models/<name>/versions/<n>/... (functions/core/registry.ts), models/<name>/aliases/<alias>.json
 *
 * A retry of the same run does not add a version: the version whose lineage names this run is
 * reused, and an alias that already points to it is left alone.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { KeyringNode } from '@aws-crypto/client-node';
import type { RegisterResult, RunState } from '../core/contracts';
import { BadRequestError, ConflictError } from '../core/errors';
import { modelKeys, preparedKeys, runKeys } from '../core/layout';
import type { DatasetManifest } from '../core/manifest';
import { loadStats } from '../core/prepared';
import { getAlias, listVersions, moveAlias, readManifest, writeVersion, type Registry } from '../core/registry';
import { getBytes, getJsonIfExists } from '../core/s3';
import { MODEL_JSON, WEIGHTS_BIN } from '../core/tfjs-io';

export interface RegisterProps {
  readonly s3: S3Client;
  readonly dataBucket: string;
  readonly modelBucket: string;
  readonly keyring: KeyringNode;
  readonly state: RunState;
  readonly codeVersion: string;
  /** @default - the current time */
  readonly now?: Date;
}

export const DEFAULT_PROMOTION_ALIAS = 'production';

/** Versions looked at, newest first, for one this run already wrote (a retried Register). */
const RETRY_LOOKBACK = 20;

async function versionOfRun(reg: Registry, model: string, runId: string): Promise<string | undefined> {
  const versions = (await listVersions(reg, model)).reverse().slice(0, RETRY_LOOKBACK);
  for (const version of versions) {
    const manifest = await readManifest(reg, model, version);
    if (manifest.lineage.runId === runId) return version;
  }
  return undefined;
}

export async function registerRun(props: RegisterProps): Promise<RegisterResult> {
  const { s3, dataBucket, state } = props;
  const runId = state.runId;
  if (state.preprocess === undefined) throw new BadRequestError(`Register needs $.preprocess in the state of run ${runId}; it is missing.`);
  if (state.export === undefined) throw new BadRequestError(`Register needs $.export in the state of run ${runId}; it is missing.`);
  const model = state.preprocess.modelName;
  const reg: Registry = { s3, bucket: props.modelBucket, keyring: props.keyring };
  const now = props.now ?? new Date();

  const stats = await loadStats(s3, dataBucket, runId);
  const prepared = await getJsonIfExists<DatasetManifest>(s3, { bucket: dataBucket, key: preparedKeys.manifest(runId) });
  const alias = prepared?.value.promotion?.alias ?? DEFAULT_PROMOTION_ALIAS;
  const promote = state.evaluate?.promote !== false;

  let version = await versionOfRun(reg, model, runId);
  if (version === undefined) {
    const tfjsPrefix = state.export.tfjsPrefix || runKeys.model(runId);
    const [onnx, modelJson, weights] = await Promise.all([
      getBytes(s3, { bucket: dataBucket, key: state.export.onnxKey || runKeys.onnx(runId) }),
      getBytes(s3, { bucket: dataBucket, key: `${tfjsPrefix}${MODEL_JSON}` }),
      getBytes(s3, { bucket: dataBucket, key: `${tfjsPrefix}${WEIGHTS_BIN}` }),
    ]);
    const outputs = stats.task === 'classification' ? (stats.classNames?.length ?? state.preprocess.classNames?.length ?? 0) : 1;
    if (outputs < 1) throw new BadRequestError(`Run ${runId}: a classification model needs classNames in stats.json; none found.`);
    const written = await writeVersion(reg, {
      model,
      now,
      artifacts: { 'model.onnx': onnx.body, [`tfjs/${MODEL_JSON}`]: modelJson.body, [`tfjs/${WEIGHTS_BIN}`]: weights.body },
      manifest: {
        task: stats.task,
        input: { name: 'input', datatype: 'FP32', shape: [-1, ...stats.inputShape] },
        output: { name: 'output', datatype: 'FP32', shape: [-1, outputs] },
        normalization: stats.normalization,
        ...(stats.classNames ? { classNames: stats.classNames } : {}),
        metrics: state.evaluate?.metrics ?? {},
        parity: state.export.parity,
        lineage: {
          dataset: state.dataset,
          runId,
          dataETags: stats.sources,
          manifestHash: stats.manifestHash,
          codeVersion: props.codeVersion,
          time: now.toISOString(),
        },
      },
    });
    version = written.version;
  }

  const aliases: string[] = [];
  if (promote) {
    const current = await getAlias(reg, model, alias);
    if (current?.record.version !== version) {
      // Evaluate compared this run with the alias's holder at that time; if another promotion
      // moved the alias since, that comparison no longer holds and this run must not win.
      if (state.evaluate !== undefined && current?.record.version !== state.evaluate.champion?.version) {
        throw new ConflictError(
          `Run ${runId}: version ${version} of ${model} is registered but not promoted: alias ${alias} points to version ${current?.record.version ?? '(none)'}, ` +
            `not ${state.evaluate.champion?.version ?? '(none)'} as when this run was evaluated; another promotion won.`,
        );
      }
      try {
        await moveAlias(reg, { model, alias, version, expectedETag: current?.etag ?? null, now });
      } catch (error) {
        if (error instanceof ConflictError) {
          throw new ConflictError(`Run ${runId}: version ${version} of ${model} is registered but not promoted. ${error.message}`, { cause: error });
        }
        throw error;
      }
    }
    aliases.push(alias);
  }
  return { model, version, aliases, manifestKey: modelKeys.versionManifest(model, version) };
}
