import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadTemplate, REPO_ROOT } from '../../local/definition';
import { statePaths } from '../../local/runtime';

/** `dlops local up` and `dlops submit` as a user runs them, in child processes. */
describe('dlops local up / submit', () => {
  const loader = pathToFileURL(require.resolve('tsx')).href;
  let root: string;
  let up: ChildProcess | undefined;
  let upOutput = '';

  const dlops = (args: string[]) =>
    spawn(process.execPath, ['--import', loader, join(REPO_ROOT, 'bin', 'dlops.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });

  const finish = (child: ChildProcess): Promise<{ code: number | null; out: string }> =>
    new Promise((resolve) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      child.once('close', (code) => resolve({ code, out }));
    });

  const waitFor = async (text: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!upOutput.includes(text)) {
      if (Date.now() > deadline) throw new Error(`"${text}" did not appear within ${timeoutMs} ms. Output so far:\n${upOutput}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const freePort = () =>
    new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });

  let s3Port: number;
  let apiPort: number;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'dlops-cli-'));
    // The template cache in the state folder spares each child process a synthesis.
    const template = loadTemplate(join(tmpdir(), 'dlops-e2e-template.json'));
    for (const dir of ['first', 'second']) {
      mkdirSync(join(root, dir), { recursive: true });
      loadTemplate(statePaths(join(root, dir)).templateCache);
    }
    expect(template.Resources).toBeDefined();
    s3Port = await freePort();
    apiPort = await freePort();
    up = dlops(['local', 'up', '--state-dir', 'first', '--s3-port', String(s3Port), '--api-port', String(apiPort)]);
    up.stdout!.on('data', (d: Buffer) => (upOutput += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (upOutput += d.toString()));
    await waitFor('dlops local runtime is up', 90_000);
  }, 180_000);

  afterAll(async () => {
    if (up && up.exitCode === null) {
      up.kill('SIGKILL');
      await new Promise((r) => up!.once('close', r));
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('prints where everything is and records itself in runtime.json', () => {
    expect(upOutput).toContain(`S3             http://127.0.0.1:${s3Port}`);
    expect(upOutput).toContain(`inference API  http://127.0.0.1:${apiPort}`);
    expect(existsSync(statePaths(join(root, 'first')).runtimeFile)).toBe(true);
  });

  it('a second local up on the same ports says the port is busy', async () => {
    const { code, out } = await finish(dlops(['local', 'up', '--state-dir', 'second', '--s3-port', String(s3Port), '--api-port', String(apiPort)]));
    expect(code).not.toBe(0);
    expect(out).toContain(`Port ${s3Port} on 127.0.0.1 (local S3) is already in use`);
  }, 90_000);

  it('a second local up on the same state folder says one is running', async () => {
    const { code, out } = await finish(dlops(['local', 'up', '--state-dir', 'first']));
    expect(code).not.toBe(0);
    expect(out).toMatch(/already running on this state folder \(pid \d+/);
  }, 90_000);

  it('submit finds the running local up, uploads data then manifest, and the execution shows its transitions', async () => {
    const data = join(root, 'bad');
    mkdirSync(data);
    writeFileSync(join(data, 'rows.csv'), 'label,x\n1,0.5\n0,0.1\n');
    writeFileSync(join(data, 'dataset.json'), JSON.stringify({ name: 'bad', task: 'clasification', format: 'csv', label: 'label' }));

    const refused = await finish(dlops(['submit', 'bad', '--dataset', 'bad', '--state-dir', 'first']));
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain('is not a valid manifest, nothing uploaded');

    const { code, out } = await finish(dlops(['submit', 'bad', '--dataset', 'bad', '--state-dir', 'first', '--skip-validation']));
    expect(code).toBe(0);
    expect(out).toContain(`local runtime at http://127.0.0.1:${s3Port}`);
    expect(out.indexOf('datasets/bad/data/rows.csv')).toBeLessThan(out.indexOf('datasets/bad/dataset.json'));
    const runId = /: run (\S+)/.exec(out)?.[1];
    expect(runId).toMatch(/^bad-[0-9a-f]{32}$/);

    await waitFor(`execution ${runId} FAILED`, 60_000);
    await waitFor(`status s3://dlops-data/runs/${runId}/status.json`, 5_000);
    expect(upOutput).toContain('✗ Preprocess');
    expect(upOutput).toContain('→ RecordFailure');
  }, 120_000);

  it('Ctrl-C stops everything and removes runtime.json', async () => {
    const closed = finish(up!);
    up!.kill('SIGINT');
    const { code } = await closed;
    expect(code).toBe(0);
    expect(upOutput).toContain('stopped.');
    expect(existsSync(statePaths(join(root, 'first')).runtimeFile)).toBe(false);
  }, 60_000);
});
