/**
 * Accuracy and time of a real training run on the mnist package's digits: 8,000 train / 2,000
 * test, stratified, Adam 1e-3, batch 64, 5 epochs, through the training step's own code
 * (prepared shards in a local S3 server -> trainRun -> model in S3 -> test accuracy).
 * Issue 3 expects about 94.8% for the seed network and 92% for the MLP 784-128-10 (PyTorch
 * reference, same split), within one point.
 *
 *   npm run bench:mnist                       # seed network (conv2d 32 3x3 relu, maxPooling 2, flatten, dense 10 softmax)
 *   npm run bench:mnist -- --model mlp        # MLP 784-128-10
 *   npm run bench:mnist -- --backend cpu      # pure-JS kernels instead of WebAssembly
 *   npm run bench:mnist -- --train 2000 --test 500 --epochs 2   # a quick look
 *
 * Writes bench/results/train-mnist.json (train-mnist-mlp.json for --model mlp, -cpu for --backend cpu).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { localS3Client } from '../functions/core/aws';
import { loadTf } from '../functions/core/backend';
import type { LayerSpec } from '../functions/core/manifest';
import { seedNetwork } from '../functions/core/model';
import { loadShard } from '../functions/core/prepared';
import { loadModelFromS3 } from '../functions/core/tfjs-io';
import { TRAINING_BACKEND, trainRun, type TrainEvent } from '../functions/train/train';
import { startLocalS3 } from '../local/s3-server';
import { DIGIT_CLASSES, mnistSplits, writePrepared } from '../test/functions/train/prepared-fixture';

const BUCKET = 'dlops-data';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const NETWORKS: Record<string, { inputShape: number[]; layers: LayerSpec[]; target: number }> = {
  seed: {
    inputShape: [28, 28, 1],
    layers: seedNetwork(10),
    target: 0.948,
  },
  mlp: {
    inputShape: [784],
    layers: [
      { type: 'dense', units: 128, activation: 'relu' },
      { type: 'dense', units: 10, activation: 'softmax' },
    ],
    target: 0.92,
  },
};

async function main(): Promise<void> {
  const modelName = arg('model', 'seed');
  const network = NETWORKS[modelName];
  if (network === undefined) throw new Error(`--model must be one of ${Object.keys(NETWORKS).join(', ')}. Received ${modelName}.`);
  const counts = { train: Number(arg('train', '8000')), validation: 0, test: Number(arg('test', '2000')) };
  const epochs = Number(arg('epochs', '5'));
  const seed = Number(arg('seed', '1'));

  const directory = mkdtempSync(join(tmpdir(), 'dlops-bench-mnist-'));
  const server = await startLocalS3({ directory, buckets: [BUCKET] });
  const s3 = localS3Client(server.endpoint);
  try {
    // --backend cpu compares the pure-JS kernels with the default (wasm when it loads).
    const loaded = await loadTf(arg('backend', 'wasm') === 'cpu' ? { prefer: 'cpu' } : { ...TRAINING_BACKEND });
    const stats = await writePrepared(s3, BUCKET, {
      runId: 'bench-mnist',
      task: 'classification',
      inputShape: network.inputShape,
      classNames: DIGIT_CLASSES,
      splits: mnistSplits(counts),
      manifest: {
        name: 'mnist',
        task: 'classification',
        format: 'csv',
        label: 'label',
        model: network.layers,
        training: { epochs, batchSize: 64, learningRate: 1e-3, optimizer: 'adam', seed },
      },
    });
    const started = performance.now();
    const summary = await trainRun({
      s3,
      bucket: BUCKET,
      runId: 'bench-mnist',
      loaded,
      log: (e: TrainEvent) => {
        if (e.event === 'epoch') process.stderr.write(`epoch ${String(e.epoch)}/${epochs}: loss ${Number(e.loss).toFixed(4)}, ${String(e.samplesPerSecond)} samples/s\n`);
      },
    });
    const trainSeconds = (performance.now() - started) / 1000;

    const { tf } = loaded;
    const model = await loadModelFromS3(tf, s3, BUCKET, summary.modelPrefix);
    let correct = 0;
    let rows = 0;
    for (const shard of stats.shards.test) {
      const part = await loadShard(s3, BUCKET, stats, shard);
      const predicted = tf.tidy(() => (model.predict(tf.tensor(part.x, [part.rows, ...network.inputShape])) as import('@tensorflow/tfjs').Tensor).argMax(-1).dataSync());
      for (let i = 0; i < part.rows; i++) if (predicted[i] === part.y[i]) correct++;
      rows += part.rows;
    }
    const accuracy = correct / rows;
    const sps = summary.epochs.map((e) => e.samplesPerSecond);
    const meanSps = Math.round((sps.reduce((a, b) => a + b, 0) / sps.length) * 10) / 10;
    const result = {
      benchmark: 'train-mnist',
      date: new Date().toISOString(),
      network: modelName,
      layers: network.layers,
      counts,
      epochs,
      batchSize: 64,
      optimizer: 'adam',
      learningRate: 1e-3,
      seed,
      accuracy,
      target: network.target,
      withinOnePoint: Math.abs(accuracy - network.target) <= 0.01,
      trainSeconds: Math.round(trainSeconds * 10) / 10,
      samplesPerSecond: sps,
      meanSamplesPerSecond: meanSps,
      backend: summary.backend,
      kernels: summary.kernels,
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
      history: summary.epochs,
    };
    console.table([
      {
        network: modelName,
        'train/test': `${counts.train}/${counts.test}`,
        epochs: summary.epochs.length,
        accuracy: `${(accuracy * 100).toFixed(2)}%`,
        target: `${(network.target * 100).toFixed(1)}% ±1`,
        'time (s)': result.trainSeconds,
        'samples/s': meanSps,
        backend: summary.backend,
        kernels: summary.kernels.length,
      },
    ]);
    console.log(`fast CPU kernels: ${summary.kernels.length === 0 ? 'none' : summary.kernels.join(', ')}`);
    mkdirSync(join(__dirname, 'results'), { recursive: true });
    const suffix = `${modelName === 'seed' ? '' : `-${modelName}`}${arg('backend', 'wasm') === 'cpu' ? '-cpu' : ''}`;
    const file = join(__dirname, 'results', `train-mnist${suffix}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(`wrote ${file}\n`);
  } finally {
    s3.destroy();
    await server.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
