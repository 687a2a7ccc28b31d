/**
 * TF.js layers models in S3: `<prefix>model.json` and `<prefix>weights.bin`, the standard
 * TF.js artifact format (what `tf.loadLayersModel` reads from files or HTTP).
 * https://www.tensorflow.org/js/guide/save_load
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type * as tfTypes from '@tensorflow/tfjs';
import { getBytes, getJson, putBytes, putJson } from './s3';

type Tf = typeof tfTypes;
type ModelArtifacts = tfTypes.io.ModelArtifacts;

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/** Turns in-memory artifacts into the two files of the TF.js format. */
export function artifactsToFiles(tf: Tf, artifacts: ModelArtifacts): { modelJson: tfTypes.io.ModelJSON; weights: Uint8Array } {
  const weightData = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
  const modelJson: tfTypes.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy ?? null,
    trainingConfig: artifacts.trainingConfig,
    weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs ?? [] }],
  };
  return { modelJson, weights: new Uint8Array(weightData) };
}

/** Turns the two files back into artifacts that `tf.loadLayersModel(tf.io.fromMemory(...))` takes. */
export function filesToArtifacts(modelJson: tfTypes.io.ModelJSON, weights: Uint8Array): ModelArtifacts {
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  return {
    modelTopology: modelJson.modelTopology,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    trainingConfig: modelJson.trainingConfig,
    weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
    weightData,
  };
}

/** Saves a layers model under an S3 prefix (ending in '/'). Weights first, model.json last. */
export async function saveModelToS3(tf: Tf, model: tfTypes.LayersModel, s3: S3Client, bucket: string, prefix: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const { modelJson, weights } = artifactsToFiles(tf, artifacts);
      await putBytes(s3, { bucket, key: `${prefix}${WEIGHTS_BIN}` }, weights, { contentType: 'application/octet-stream' });
      await putJson(s3, { bucket, key: `${prefix}${MODEL_JSON}` }, modelJson);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength } };
    }),
  );
}

/** Reads the two files of a model under an S3 prefix. */
export async function readModelFiles(s3: S3Client, bucket: string, prefix: string): Promise<{ modelJson: tfTypes.io.ModelJSON; weights: Uint8Array }> {
  const { value: modelJson } = await getJson<tfTypes.io.ModelJSON>(s3, { bucket, key: `${prefix}${MODEL_JSON}` });
  const { body: weights } = await getBytes(s3, { bucket, key: `${prefix}${WEIGHTS_BIN}` });
  return { modelJson, weights };
}

/** Loads a layers model saved by saveModelToS3. */
export async function loadModelFromS3(tf: Tf, s3: S3Client, bucket: string, prefix: string): Promise<tfTypes.LayersModel> {
  const { modelJson, weights } = await readModelFiles(s3, bucket, prefix);
  return tf.loadLayersModel(tf.io.fromMemory(filesToArtifacts(modelJson, weights)));
}
