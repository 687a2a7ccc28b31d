/**
 * `dlops models ls|show|promote|rollback|pull`, `dlops predict`, `dlops serve`.
 *
 * Each works against the local runtime (DLOPS_S3_ENDPOINT + DLOPS_LOCAL_KEY_FILE, or a running
 * `dlops local up` found through .dlops/runtime.json) or against AWS (default credential
 * chain; MODEL_BUCKET and, to decrypt, KMS_KEY_ARN — the stack's outputs).
 * `serve` runs the same inference handler as the Lambda function, over HTTP on this machine,
 * against the same bucket: the hybrid serving path.
 */
import type { Command } from 'commander';
import type { KeyringNode } from '@aws-crypto/client-node';
import { S3Client } from '@aws-sdk/client-s3';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { localS3Client } from '../functions/core/aws';
import { kmsKeyring, loadOrCreateLocalKey, rawAesKeyring } from '../functions/core/crypto';
import { ENV, optionalEnv } from '../functions/core/env';
import { BadRequestError, ConfigError } from '../functions/core/errors';
import {
  listAliases,
  listModels,
  listVersions,
  moveAlias,
  readArtifact,
  readManifest,
  resolveVersion,
  rollbackAlias,
  type Registry,
} from '../functions/core/registry';
import { ModelStore } from '../functions/inference/models';
import { createInferenceService } from '../functions/inference/service';
import { startApiAdapter } from '../local/api-adapter';
import { LOCAL_MODEL_BUCKET, statePaths } from '../local/runtime';
import { localTarget } from '../local/submit';

export interface ModelCommandsIO {
  /** @default console.log */
  readonly out?: (line: string) => void;
  /** @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

interface TargetFlags {
  readonly endpoint?: string;
  readonly bucket?: string;
  readonly keyFile?: string;
  readonly kmsKey?: string;
  readonly stateDir?: string;
}

export interface RegistryTarget {
  readonly s3: S3Client;
  readonly bucket: string;
  /** Human-readable origin, e.g. "local S3 at http://127.0.0.1:4568". */
  readonly where: string;
  /** Built on first use: listing and promoting need no key. */
  keyring(): KeyringNode;
}

/** Where the registry is: flags, then the environment, then a running `local up`, then AWS. */
export function resolveRegistryTarget(flags: TargetFlags, env: NodeJS.ProcessEnv = process.env): RegistryTarget {
  const stateDir = flags.stateDir ?? '.dlops';
  const local = localTarget(flags.endpoint, stateDir, env);
  if (local !== undefined) {
    const { endpoint, running } = local;
    const keyFile = flags.keyFile ?? optionalEnv(ENV.localKeyFile, env) ?? running?.keyFile ?? statePaths(stateDir).keyFile;
    let keyring: KeyringNode | undefined;
    return {
      s3: localS3Client(endpoint),
      bucket: flags.bucket ?? optionalEnv(ENV.modelBucket, env) ?? running?.modelBucket ?? LOCAL_MODEL_BUCKET,
      where: `local S3 at ${endpoint}`,
      keyring: () => (keyring ??= rawAesKeyring(loadOrCreateLocalKey(keyFile))),
    };
  }
  const bucket = flags.bucket ?? optionalEnv(ENV.modelBucket, env);
  if (bucket === undefined) {
    throw new ConfigError('No registry: start `dlops local up` (or set DLOPS_S3_ENDPOINT), or give --bucket / MODEL_BUCKET (the stack output) for AWS.');
  }
  let keyring: KeyringNode | undefined;
  return {
    s3: new S3Client({}),
    bucket,
    where: `s3://${bucket}`,
    keyring: () => {
      const arn = flags.kmsKey ?? optionalEnv(ENV.kmsKeyArn, env);
      if (arn === undefined) throw new ConfigError('Decrypting models in AWS needs the KMS key: give --kms-key or set KMS_KEY_ARN (the stack output).');
      return (keyring ??= kmsKeyring(arn));
    },
  };
}

function registryOf(target: RegistryTarget, withKey: boolean): Registry {
  // Commands that never decrypt get a keyring that says so if it is ever used.
  return { s3: target.s3, bucket: target.bucket, keyring: withKey ? target.keyring() : (undefined as unknown as KeyringNode) };
}

/** `name@ref` (ref: version number or alias; default production). */
export function parseModelRef(text: string, defaultRef = 'production'): { model: string; ref: string } {
  const at = text.indexOf('@');
  if (at === 0 || at === text.length - 1) throw new BadRequestError(`Expected <model>[@<alias|version>]. Received "${text}".`);
  return at < 0 ? { model: text, ref: defaultRef } : { model: text.slice(0, at), ref: text.slice(at + 1) };
}

function addTargetOptions(command: Command): Command {
  return command
    .option('--endpoint <url>', 'local S3 endpoint (default: DLOPS_S3_ENDPOINT, else a running `dlops local up`, else AWS)')
    .option('--bucket <name>', 'model bucket (default: MODEL_BUCKET, else the local runtime\'s)')
    .option('--key-file <path>', 'local AES key file (default: DLOPS_LOCAL_KEY_FILE, else .dlops/keys/local-aes.key)')
    .option('--kms-key <arn>', 'KMS key ARN in AWS (default: KMS_KEY_ARN)')
    .option('--state-dir <dir>', 'local runtime state folder', '.dlops');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

function formatMetrics(metrics: Record<string, number>): string {
  return Object.entries(metrics)
    .slice(0, 3)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(4)}`)
    .join(' ');
}

/** Reads a predict input file: a KServe v2 request, a TF Serving request, or a bare list of examples. */
export function predictRequestOf(value: unknown): { protocol: 'v2' | 'tf'; body: unknown } {
  if (Array.isArray(value)) return { protocol: 'tf', body: { instances: value } };
  if (typeof value === 'object' && value !== null) {
    const body = value as Record<string, unknown>;
    if (Array.isArray(body.inputs) && body.inputs.every((i) => typeof i === 'object' && i !== null && 'datatype' in i)) return { protocol: 'v2', body };
    if (body.instances !== undefined || body.inputs !== undefined) return { protocol: 'tf', body };
  }
  throw new BadRequestError('The input file must hold a KServe v2 request ({"inputs": [{name, shape, datatype, data}]}), a TF Serving request ({"instances": [...]}) or a JSON array of examples.');
}

function predictPath(protocol: 'v2' | 'tf', model: string, version?: string): string {
  const m = encodeURIComponent(model);
  if (protocol === 'v2') return version ? `/v2/models/${m}/versions/${encodeURIComponent(version)}/infer` : `/v2/models/${m}/infer`;
  return version ? `/v1/models/${m}/${/^\d+$/.test(version) ? 'versions' : 'labels'}/${encodeURIComponent(version)}:predict` : `/v1/models/${m}:predict`;
}

export function registerModelCommands(program: Command, io: ModelCommandsIO = {}): void {
  const out = io.out ?? ((line: string) => console.log(line));
  const env = io.env ?? process.env;
  const models = program.command('models').description('The encrypted model registry: list, show, promote, roll back, pull.');

  addTargetOptions(models.command('ls').argument('[model]', 'a model: list its versions and aliases').option('--json', 'print JSON'))
    .description('List models, or the versions and aliases of one model.')
    .action(async (model: string | undefined, flags: TargetFlags & { json?: boolean }) => {
      const reg = registryOf(resolveRegistryTarget(flags, env), false);
      if (model === undefined) {
        const names = await listModels(reg);
        const rows = await Promise.all(
          names.map(async (name) => {
            const [versions, aliases] = await Promise.all([listVersions(reg, name), listAliases(reg, name)]);
            return { model: name, versions: versions.length, latest: versions.at(-1) ?? '-', aliases: aliases.map((a) => `${a.alias}=${a.version}`) };
          }),
        );
        if (flags.json) return out(JSON.stringify(rows, null, 2));
        if (rows.length === 0) return out('No models registered yet.');
        table([['MODEL', 'VERSIONS', 'LATEST', 'ALIASES'], ...rows.map((r) => [r.model, String(r.versions), r.latest, r.aliases.join(' ')])]).forEach(out);
        return;
      }
      const [versions, aliases] = await Promise.all([listVersions(reg, model), listAliases(reg, model)]);
      if (versions.length === 0) throw new BadRequestError(`No model named ${model}.`);
      const manifests = await Promise.all(versions.map((v) => readManifest(reg, model, v)));
      const rows = manifests.map((m) => ({
        version: m.version,
        createdAt: m.createdAt,
        runId: m.lineage.runId,
        metrics: m.metrics,
        aliases: aliases.filter((a) => a.version === m.version).map((a) => a.alias),
      }));
      if (flags.json) return out(JSON.stringify(rows, null, 2));
      table([['VERSION', 'CREATED', 'RUN', 'METRICS', 'ALIASES'], ...rows.map((r) => [r.version, r.createdAt, r.runId, formatMetrics(r.metrics), r.aliases.join(' ')])]).forEach(out);
    });

  addTargetOptions(models.command('show').argument('<model>', 'model[@alias|version], default @production'))
    .description('Print a version manifest (input/output spec, metrics, parity, lineage, digests).')
    .action(async (text: string, flags: TargetFlags) => {
      const reg = registryOf(resolveRegistryTarget(flags, env), false);
      const { model, ref } = parseModelRef(text);
      const version = await resolveVersion(reg, model, ref);
      const aliases = (await listAliases(reg, model)).filter((a) => a.version === version).map((a) => a.alias);
      out(JSON.stringify({ ...(await readManifest(reg, model, version)), aliases }, null, 2));
    });

  addTargetOptions(models.command('promote').argument('<model>').argument('<version>').option('--alias <alias>', 'alias to move', 'production'))
    .description('Point an alias at a version (a conditional write: fails if someone moved it meanwhile).')
    .action(async (model: string, version: string, flags: TargetFlags & { alias: string }) => {
      const reg = registryOf(resolveRegistryTarget(flags, env), false);
      const { record } = await moveAlias(reg, { model, alias: flags.alias, version });
      out(`${model}: ${record.alias} -> version ${record.version}${record.previous ? ` (was ${record.previous})` : ''}`);
    });

  addTargetOptions(models.command('rollback').argument('<model>').option('--alias <alias>', 'alias to move back', 'production').option('--to <version>', 'version to go back to (default: the previous one)'))
    .description('Move an alias back to its previous version (or --to a given one).')
    .action(async (model: string, flags: TargetFlags & { alias: string; to?: string }) => {
      const reg = registryOf(resolveRegistryTarget(flags, env), false);
      const { record, from } = await rollbackAlias(reg, { model, alias: flags.alias, to: flags.to });
      out(`${model}: ${record.alias} rolled back from version ${from} to ${record.version}`);
    });

  addTargetOptions(models.command('pull').argument('<model>', 'model@alias|version').requiredOption('--out <dir>', 'folder to write the decrypted model into'))
    .description('Download a version, decrypt it and verify every digest (ONNX, TF.js, manifest.json).')
    .action(async (text: string, flags: TargetFlags & { out: string }) => {
      const target = resolveRegistryTarget(flags, env);
      const reg = registryOf(target, true);
      const { model, ref } = parseModelRef(text);
      const version = await resolveVersion(reg, model, ref);
      const manifest = await readManifest(reg, model, version);
      const dir = resolve(flags.out);
      for (const artifact of Object.keys(manifest.artifacts).sort()) {
        const plaintext = await readArtifact(reg, manifest, artifact);
        const file = join(dir, artifact);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, plaintext);
        // readArtifact refused anything whose sha256 differs from the manifest's: print the verified one.
        out(`${artifact}  ${plaintext.length} bytes  sha256 ${manifest.artifacts[artifact]!.sha256}  verified`);
      }
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
      out(`Pulled ${model} version ${version} from ${target.where} into ${dir}`);
    });

  addTargetOptions(
    program
      .command('predict')
      .argument('<model>', 'model[@alias|version]')
      .requiredOption('--input <file>', 'JSON: a KServe v2 request, a TF Serving request, or an array of examples')
      .option('--url <url>', 'send to a running API (dlops serve, local up, API Gateway) instead of loading the model here'),
  )
    .description('Run a prediction and print the response.')
    .action(async (text: string, flags: TargetFlags & { input: string; url?: string }) => {
      const { model, ref } = text.includes('@') ? parseModelRef(text) : { model: text, ref: undefined };
      let parsed: unknown;
      try {
        parsed = JSON.parse(readFileSync(flags.input, 'utf8'));
      } catch (error) {
        throw new BadRequestError(`${flags.input} is not a readable JSON file: ${(error as Error).message}`);
      }
      const { protocol, body } = predictRequestOf(parsed);
      const path = predictPath(protocol, model, ref);
      let status: number;
      let response: string;
      if (flags.url !== undefined) {
        const answer = await fetch(new URL(path, flags.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        status = answer.status;
        response = await answer.text();
      } else {
        const target = resolveRegistryTarget(flags, env);
        const service = createInferenceService({ store: new ModelStore({ registry: registryOf(target, true) }) });
        const result = await service({ path, httpMethod: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), isBase64Encoded: false } as never);
        status = result.statusCode;
        response = result.body;
      }
      if (status !== 200) {
        let message = response;
        try {
          message = (JSON.parse(response) as { error?: string }).error ?? response;
        } catch {
          // not JSON: print as is
        }
        throw new Error(`prediction failed (HTTP ${status}): ${message}`);
      }
      out(JSON.stringify(JSON.parse(response), null, 2));
    });

  addTargetOptions(
    program
      .command('serve')
      .option('--port <port>', 'TCP port', '8080')
      .option('--host <host>', 'interface to listen on (0.0.0.0 to serve other machines)', '127.0.0.1')
      .option('--alias-ttl <seconds>', 'seconds before an alias is re-read', '30')
      .option('--max-batch <n>', 'largest batch per request', '256'),
  )
    .description('Serve the registry\'s models over HTTP here with the same inference handler as the Lambda function (KServe v2 + TF Serving).')
    .action(async (flags: TargetFlags & { port: string; host: string; aliasTtl: string; maxBatch: string }) => {
      const target = resolveRegistryTarget(flags, env);
      const store = new ModelStore({
        registry: registryOf(target, true),
        aliasTtlMs: Number(flags.aliasTtl) * 1000,
        onLoad: (m) => out(`loaded ${m.manifest.model} version ${m.manifest.version}: fetch ${m.timings.fetchMs.toFixed(0)} ms, decrypt ${m.timings.decryptMs.toFixed(0)} ms, session ${m.timings.sessionMs.toFixed(0)} ms`),
      });
      const service = createInferenceService({ store, maxBatch: Number(flags.maxBatch) });
      const api = await startApiAdapter({ handler: async (event) => service(event), port: Number(flags.port), host: flags.host, functionName: 'dlops-serve' });
      out(`Serving models from ${target.where} at ${api.url}  (POST ${api.url}/v2/models/<name>/infer, ${api.url}/v1/models/<name>:predict)`);
      await new Promise<void>((resolveStop) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          api.stop().then(() => resolveStop());
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
