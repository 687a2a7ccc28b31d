/**
 * Training throughput of the seed network and an MLP, in one run, side by side:
 *   stock TF.js pure-JS 'cpu' backend | dlops fast kernels on 'cpu' | dlops fast path (enableFastCpuTraining:
 *   WebAssembly backend + dlops gradient kernels) | PyTorch CPU (when `import torch` works).
 * Prints a table and writes bench/results/train-throughput.json.
 *
 *   npm run bench:throughput            (BENCH_SECONDS=4 by default: timed seconds per fast measurement)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { disableFastCpuKernels, enableFastCpuKernels, enableFastCpuTraining } from '../functions/core/fastcpu';

const BATCH = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);

type Network = 'seed-cnn' | 'mlp';

interface Row {
  network: Network;
  trainer: string;
  samplesPerSecond: number | null;
  /** samples per second of this process's CPU time: less sensitive to other load on a shared machine */
  samplesPerCpuSecond: number | null;
  batches: number;
  seconds: number;
  note?: string;
}

function build(network: Network): tf.Sequential {
  const m = tf.sequential();
  if (network === 'seed-cnn') {
    m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu' }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  } else {
    m.add(tf.layers.dense({ inputShape: [784], units: 128, activation: 'relu' }));
    m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  }
  m.compile({ optimizer: tf.train.adam(), loss: 'categoricalCrossentropy' });
  return m;
}

/** Trains on random batches (throughput does not depend on the values) for at least minBatches and minSeconds. */
async function measure(network: Network, minBatches: number, minSeconds: number): Promise<{ sps: number; spcs: number; batches: number; seconds: number }> {
  const model = build(network);
  const shape = network === 'seed-cnn' ? [BATCH, 28, 28, 1] : [BATCH, 784];
  const xs = [0, 1, 2].map(() => tf.randomUniform(shape));
  const ys = [0, 1, 2].map(() => tf.oneHot(tf.randomUniform([BATCH], 0, 10, 'int32'), 10));
  // Warm-up: JIT compilation and first-call allocations are not throughput.
  for (let i = 0; i < 2; i++) await model.trainOnBatch(xs[i % 3], ys[i % 3]);
  let batches = 0;
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let seconds = 0;
  while (batches < minBatches || seconds < minSeconds) {
    await model.trainOnBatch(xs[batches % 3], ys[batches % 3]);
    batches++;
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
  }
  const cpu = process.cpuUsage(cpuStart);
  tf.dispose([...xs, ...ys]);
  model.dispose();
  return { sps: (batches * BATCH) / seconds, spcs: (batches * BATCH) / ((cpu.user + cpu.system) / 1e6), batches, seconds };
}

function torchAvailable(): boolean {
  return spawnSync('python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

/** bench/torch_reference.py trains the same networks with 2 threads and prints JSON {network: samples/s}. */
function torchReference(): Record<string, number> | null {
  if (!torchAvailable()) return null;
  const out = execFileSync('python3', [path.join(__dirname, 'torch_reference.py'), String(BATCH), String(SECONDS)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, number>;
}

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  disableFastCpuKernels(tf);
  const rows: Row[] = [];
  const run = async (network: Network, trainer: string, minBatches: number, minSeconds: number): Promise<void> => {
    const r = await measure(network, minBatches, minSeconds);
    rows.push({
      network, trainer, samplesPerSecond: Math.round(r.sps * 10) / 10, samplesPerCpuSecond: Math.round(r.spcs * 10) / 10,
      batches: r.batches, seconds: Math.round(r.seconds * 100) / 100,
    });
    process.stderr.write(`${network} ${trainer}: ${r.sps.toFixed(1)} samples/s, ${r.spcs.toFixed(1)} per CPU-second (${r.batches} batches, ${r.seconds.toFixed(2)} s)\n`);
  };

  // Stock first: a few batches are enough at ~20 samples/s.
  await run('seed-cnn', 'tfjs-cpu-stock', 3, 0);
  await run('mlp', 'tfjs-cpu-stock', 10, SECONDS);
  const { kernels } = enableFastCpuKernels(tf);
  await run('seed-cnn', 'dlops-fastcpu-js', 10, SECONDS);
  await run('mlp', 'dlops-fastcpu-js', 10, SECONDS);
  const fastPath = await enableFastCpuTraining(tf);
  const fastName = `dlops-fastcpu-${fastPath.backend}`;
  if (fastPath.backend !== 'cpu') {
    await run('seed-cnn', fastName, 10, SECONDS);
    await run('mlp', fastName, 10, SECONDS);
  }
  await tf.setBackend('cpu');
  disableFastCpuKernels(tf);

  const torch = torchReference();
  for (const network of ['seed-cnn', 'mlp'] as const) {
    rows.push({
      network, trainer: 'pytorch-cpu-2-threads', samplesPerSecond: torch?.[network] ?? null, samplesPerCpuSecond: null, batches: 0, seconds: 0,
      note: torch === null ? 'not available (python3 -c "import torch" fails here)' : undefined,
    });
  }

  const sps = (network: Network, trainer: string): number | null => rows.find((r) => r.network === network && r.trainer === trainer)?.samplesPerSecond ?? null;
  const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : Math.round((a / b) * 100) / 100);
  const ratios = Object.fromEntries((['seed-cnn', 'mlp'] as const).map((n) => [n, {
    fastPath: fastName,
    fastOverStock: ratio(sps(n, fastName), sps(n, 'tfjs-cpu-stock')),
    fastOverPytorch: ratio(sps(n, fastName), sps(n, 'pytorch-cpu-2-threads')),
    jsKernelsOverStock: ratio(sps(n, 'dlops-fastcpu-js'), sps(n, 'tfjs-cpu-stock')),
  }]));

  const header = ['network', 'trainer', 'samples/s', 'per CPU-s', 'vs stock', 'vs PyTorch'];
  const lines = rows.map((r) => [
    r.network, r.trainer, r.samplesPerSecond === null ? 'not available' : r.samplesPerSecond.toFixed(1),
    r.samplesPerCpuSecond === null ? '-' : r.samplesPerCpuSecond.toFixed(1),
    String(ratio(r.samplesPerSecond, sps(r.network, 'tfjs-cpu-stock')) ?? '-') + (r.samplesPerSecond === null ? '' : 'x'),
    r.samplesPerSecond === null ? '-' : String(ratio(r.samplesPerSecond, sps(r.network, 'pytorch-cpu-2-threads')) ?? 'n/a'),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const l of lines) console.log(fmt(l));
  console.log(`batch ${BATCH}, Adam, random inputs; dlops fast path = ${fastName} (kernels: ${fastPath.kernels.join(', ')}); JS kernels on 'cpu': ${kernels.join(', ')}`);
  console.log(`load average during the run: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} cpus`);

  const result = {
    benchmark: 'train-throughput', date: new Date().toISOString(), node: process.version,
    cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadAverage: os.loadavg(), batch: BATCH, optimizer: 'adam',
    fastPath: fastName, fastPathKernels: fastPath.kernels, jsKernels: kernels, rows, ratios,
  };
  const dir = path.join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'train-throughput.json'), `${JSON.stringify(result, null, 2)}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
