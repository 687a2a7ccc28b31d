/**
 * Per-epoch checkpoints of a run under `runs/<runId>/checkpoints/epoch-NNNNN/`:
 * model.json + weights.bin (tfjs-io), optimizer.bin (the optimizer's slots and iteration
 * count), and checkpoint.json written LAST as the commit marker, so a job killed mid-write
 * leaves a folder that resume ignores. Batch on Spot may reclaim the instance at any point:
 * https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { LayersModel } from '@tensorflow/tfjs';
import type { Tf } from '../core/backend';
import { TrainingError } from '../core/errors';
import { runKeys } from '../core/layout';
import { deletePrefix, getBytes, getJsonIfExists, listChildren, putBytes, putJson } from '../core/s3';
import { readModelFiles, saveModelToS3 } from '../core/tfjs-io';
import type { EpochRecord } from './options';

export const CHECKPOINT_FILE = 'checkpoint.json';
export const OPTIMIZER_FILE = 'optimizer.bin';

/** checkpoint.json */
export interface CheckpointManifest {
  /** Epochs completed (1-based number of the last one). */
  readonly epoch: number;
  readonly epochs: number;
  readonly history: EpochRecord[];
  /** Seed of the weight initialisers and of every epoch's shuffle (epochOrder(rows, seed, epoch)). */
  readonly seed: number;
  readonly stoppedEarly: boolean;
  readonly optimizer: { readonly name: string; readonly weightSpecs: Array<{ name: string; shape: number[]; dtype: string }> };
  readonly time: string;
}

export interface Checkpoint {
  readonly manifest: CheckpointManifest;
  readonly prefix: string;
}

export function checkpointFolder(epoch: number): string {
  return `epoch-${String(epoch).padStart(5, '0')}`;
}

export function checkpointPrefix(runId: string, epoch: number): string {
  return `${runKeys.checkpoints(runId)}${checkpointFolder(epoch)}/`;
}

function epochOfFolder(name: string): number | undefined {
  const match = /^epoch-(\d+)$/.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/** The newest complete checkpoint of a run (one whose checkpoint.json exists), if any. */
export async function findLatestCheckpoint(s3: S3Client, bucket: string, runId: string): Promise<Checkpoint | undefined> {
  const epochs = (await listChildren(s3, bucket, runKeys.checkpoints(runId)))
    .map(epochOfFolder)
    .filter((e): e is number => e !== undefined)
    .sort((a, b) => b - a);
  for (const epoch of epochs) {
    const prefix = checkpointPrefix(runId, epoch);
    const found = await getJsonIfExists<CheckpointManifest>(s3, { bucket, key: `${prefix}${CHECKPOINT_FILE}` });
    if (found !== undefined) return { manifest: found.value, prefix };
  }
  return undefined;
}

export interface SaveCheckpointProps {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly runId: string;
  readonly tf: Tf;
  readonly model: LayersModel;
  readonly optimizerName: string;
  readonly state: Omit<CheckpointManifest, 'optimizer' | 'time'>;
  /**
   * Complete checkpoints kept (older ones are deleted after a new one is committed).
   * @default 2 - the newest, and one in reserve
   */
  readonly keep?: number;
}

export async function saveCheckpoint(props: SaveCheckpointProps): Promise<string> {
  const { s3, bucket, runId, tf, model } = props;
  const prefix = checkpointPrefix(runId, props.state.epoch);
  await saveModelToS3(tf, model, s3, bucket, prefix);
  const optimizerWeights = await model.optimizer.getWeights();
  const encoded = await tf.io.encodeWeights(optimizerWeights);
  const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(encoded.data));
  await putBytes(s3, { bucket, key: `${prefix}${OPTIMIZER_FILE}` }, data, { contentType: 'application/octet-stream' });
  const manifest: CheckpointManifest = {
    ...props.state,
    optimizer: { name: props.optimizerName, weightSpecs: encoded.specs.map((s) => ({ name: s.name, shape: [...s.shape], dtype: s.dtype })) },
    time: new Date().toISOString(),
  };
  await putJson(s3, { bucket, key: `${prefix}${CHECKPOINT_FILE}` }, manifest);
  await pruneCheckpoints(s3, bucket, runId, props.state.epoch, props.keep ?? 2);
  return prefix;
}

async function pruneCheckpoints(s3: S3Client, bucket: string, runId: string, newest: number, keep: number): Promise<void> {
  const folders = await listChildren(s3, bucket, runKeys.checkpoints(runId));
  for (const folder of folders) {
    const epoch = epochOfFolder(folder);
    if (epoch !== undefined && epoch <= newest - keep) await deletePrefix(s3, bucket, checkpointPrefix(runId, epoch));
  }
}

/**
 * Puts a checkpoint's weights into a freshly built, compiled model of the same spec, and its
 * slots into the model's optimizer. Weights are matched by position (the save order of
 * model.weights), not by name: TF.js numbers layer names per process, and a resumed job is a
 * new process.
 */
export async function restoreCheckpoint(s3: S3Client, bucket: string, tf: Tf, model: LayersModel, checkpoint: Checkpoint): Promise<void> {
  const { modelJson, weights } = await readModelFiles(s3, bucket, checkpoint.prefix);
  const specs = modelJson.weightsManifest.flatMap((group) => group.weights);
  if (specs.length !== model.weights.length) {
    throw new TrainingError(
      `Checkpoint ${checkpoint.prefix} holds ${specs.length} weight tensors but the model has ${model.weights.length}: the model spec changed since it was written.`,
    );
  }
  const decoded = tf.io.decodeWeights(toArrayBuffer(weights), specs);
  const values = specs.map((spec, i) => {
    const tensor = decoded[spec.name];
    const expected = model.weights[i].shape;
    if (tensor.shape.join('x') !== expected.join('x')) {
      throw new TrainingError(`Checkpoint ${checkpoint.prefix}: weight ${i} (${spec.name}) has shape [${tensor.shape.join(', ')}], the model expects [${expected.join(', ')}].`);
    }
    return tensor;
  });
  model.setWeights(values);
  tf.dispose(values);

  const { body } = await getBytes(s3, { bucket, key: `${checkpoint.prefix}${OPTIMIZER_FILE}` });
  const optimizerSpecs = checkpoint.manifest.optimizer.weightSpecs as Parameters<Tf['io']['decodeWeights']>[1];
  const slots = tf.io.decodeWeights(toArrayBuffer(body), optimizerSpecs);
  await model.optimizer.setWeights(optimizerSpecs.map((spec) => ({ name: spec.name, tensor: slots[spec.name] })));
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
