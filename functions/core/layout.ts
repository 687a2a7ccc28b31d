/**
 * The S3 key layout of dlops (DESIGN.md, "Flow" and "Contracts"). Every key is built here.
 */
export const MANIFEST_FILE = 'dataset.json';

export const datasetKeys = {
  /** Where a dataset's data files go (uploaded first). */
  dataPrefix: (dataset: string) => `datasets/${dataset}/data/`,
  /** The commit marker: its upload starts a run. */
  manifest: (dataset: string) => `datasets/${dataset}/${MANIFEST_FILE}`,
};

/** Parses `datasets/<dataset>/dataset.json`; undefined for any other key. */
export function datasetOfManifestKey(key: string): string | undefined {
  const match = /^datasets\/([^/]+)\/dataset\.json$/.exec(key);
  return match?.[1];
}

export const preparedKeys = {
  prefix: (runId: string) => `prepared/${runId}/`,
  stats: (runId: string) => `prepared/${runId}/stats.json`,
  /** The validated manifest with defaults resolved, as the run uses it (a later upload cannot change a run). */
  manifest: (runId: string) => `prepared/${runId}/manifest.json`,
  /** `split` is train | validation | test; `part` is x or y. */
  shard: (runId: string, split: string, part: 'x' | 'y', index: number) =>
    `prepared/${runId}/${split}/${part}-${String(index).padStart(5, '0')}.npy`,
};

export const runKeys = {
  prefix: (runId: string) => `runs/${runId}/`,
  status: (runId: string) => `runs/${runId}/status.json`,
  checkpoints: (runId: string) => `runs/${runId}/checkpoints/`,
  /** The trained TF.js layers model (model.json + weights). */
  model: (runId: string) => `runs/${runId}/model/`,
  history: (runId: string) => `runs/${runId}/history.json`,
  onnx: (runId: string) => `runs/${runId}/export/model.onnx`,
  exportResult: (runId: string) => `runs/${runId}/export/export.json`,
  evaluation: (runId: string) => `runs/${runId}/evaluation.json`,
  report: (runId: string) => `runs/${runId}/report.html`,
};

export const modelKeys = {
  root: (model: string) => `models/${model}/`,
  versions: (model: string) => `models/${model}/versions/`,
  version: (model: string, version: string) => `models/${model}/versions/${version}/`,
  artifact: (model: string, version: string, artifact: string) => `models/${model}/versions/${version}/${artifact}`,
  versionManifest: (model: string, version: string) => `models/${model}/versions/${version}/manifest.json`,
  aliases: (model: string) => `models/${model}/aliases/`,
  alias: (model: string, alias: string) => `models/${model}/aliases/${alias}.json`,
};
