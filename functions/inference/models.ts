/**
 * Model versions loaded for serving, kept while the function is warm.
 *
 * - A version is immutable, so its manifest and its ONNX Runtime session are built once and
 *   reused by every later invocation (up to `maxSessions` versions, least recently used first out).
 * - An alias can move at any time: its resolution is re-read after `aliasTtlMs`, so a promotion
 *   takes effect without a redeploy.
 * - The decrypted model stays in memory: the session is created from bytes, never from a file.
 * - A failed load is not cached, so the next request tries again.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { DlopsError, IntegrityError, ModelUnavailableError, NotFoundError } from '../core/errors';
import { modelKeys } from '../core/layout';
import { decryptVerified, getAlias, isVersion, listVersions, readManifest, checkModelName, type Registry, type VersionManifest } from '../core/registry';
import { getBytes } from '../core/s3';

export const ONNX_ARTIFACT = 'model.onnx';

export interface LoadTimings {
  readonly fetchMs: number;
  readonly decryptMs: number;
  readonly sessionMs: number;
}

export interface LoadedModel {
  readonly manifest: VersionManifest;
  readonly session: InferenceSession;
  readonly timings: LoadTimings;
}

export interface ModelStoreProps {
  readonly registry: Registry;
  /**
   * How long an alias resolution is reused.
   * @default 30000 - a promotion is served within 30 s
   */
  readonly aliasTtlMs?: number;
  /**
   * Alias served when a request names no version.
   * @default 'production'
   */
  readonly defaultAlias?: string;
  /**
   * Sessions kept at once.
   * @default 4
   */
  readonly maxSessions?: number;
  /** @default - ONNX Runtime's InferenceSession.create on the CPU provider */
  readonly createSession?: (model: Uint8Array) => Promise<InferenceSession>;
  /** Called after each successful load (metrics, logs). */
  readonly onLoad?: (model: LoadedModel) => void;
  /** @default Date.now */
  readonly clock?: () => number;
}

let ortModule: typeof import('onnxruntime-node') | undefined;
/** ONNX Runtime, loaded on first use so health checks do not pay for the native module. */
export async function ort(): Promise<typeof import('onnxruntime-node')> {
  ortModule ??= await import('onnxruntime-node');
  return ortModule;
}

async function defaultCreateSession(model: Uint8Array): Promise<InferenceSession> {
  const { InferenceSession } = await ort();
  return InferenceSession.create(model, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
}

export class ModelStore {
  readonly registry: Registry;
  readonly defaultAlias: string;
  /** Successful loads since start: each is one fetch + decrypt + session creation. */
  loads = 0;
  private readonly aliasTtlMs: number;
  private readonly maxSessions: number;
  private readonly createSession: (model: Uint8Array) => Promise<InferenceSession>;
  private readonly clock: () => number;
  private readonly aliases = new Map<string, { version: string; expires: number }>();
  private readonly manifests = new Map<string, Promise<VersionManifest>>();
  private readonly sessions = new Map<string, Promise<LoadedModel>>();

  constructor(private readonly props: ModelStoreProps) {
    this.registry = props.registry;
    this.aliasTtlMs = props.aliasTtlMs ?? 30_000;
    this.defaultAlias = props.defaultAlias ?? 'production';
    this.maxSessions = props.maxSessions ?? 4;
    this.createSession = props.createSession ?? defaultCreateSession;
    this.clock = props.clock ?? Date.now;
  }

  /** The version a request means: a version number, an alias, or (none) the default alias. */
  async resolve(model: string, ref?: string): Promise<string> {
    checkModelName(model);
    const wanted = ref ?? this.defaultAlias;
    if (isVersion(wanted)) {
      await this.manifest(model, wanted);
      return wanted;
    }
    const key = `${model}/${wanted}`;
    const cached = this.aliases.get(key);
    if (cached !== undefined && cached.expires > this.clock()) return cached.version;
    const alias = await getAlias(this.registry, model, wanted);
    if (alias === undefined) {
      const versions = await listVersions(this.registry, model);
      if (versions.length === 0) throw new NotFoundError(`No model named ${model}.`);
      throw new NotFoundError(`Model ${model} has no alias ${wanted} (versions: ${versions.join(', ')}).`);
    }
    this.aliases.set(key, { version: alias.record.version, expires: this.clock() + this.aliasTtlMs });
    return alias.record.version;
  }

  /** A version's manifest (cached: versions never change). */
  manifest(model: string, version: string): Promise<VersionManifest> {
    const key = `${model}@${version}`;
    let found = this.manifests.get(key);
    if (found === undefined) {
      found = readManifest(this.registry, model, version);
      this.manifests.set(key, found);
      found.catch(() => this.manifests.delete(key));
    }
    return found;
  }

  /** The loaded version, built on first use and reused while warm. */
  load(model: string, version: string): Promise<LoadedModel> {
    const key = `${model}@${version}`;
    const found = this.sessions.get(key);
    if (found !== undefined) {
      // Re-insert: Map order is the LRU order.
      this.sessions.delete(key);
      this.sessions.set(key, found);
      return found;
    }
    const loading = this.build(model, version);
    this.sessions.set(key, loading);
    loading.then(
      () => this.evict(),
      () => this.sessions.delete(key),
    );
    return loading;
  }

  private evict(): void {
    while (this.sessions.size > this.maxSessions) {
      const [oldest, loading] = this.sessions.entries().next().value as [string, Promise<LoadedModel>];
      this.sessions.delete(oldest);
      loading.then((m) => m.session.release()).catch(() => undefined);
    }
  }

  private async build(model: string, version: string): Promise<LoadedModel> {
    const manifest = await this.manifest(model, version);
    const where = `Model ${model} version ${version}`;
    try {
      const t0 = performance.now();
      const { body } = await getBytes(this.registry.s3, { bucket: this.registry.bucket, key: modelKeys.artifact(model, version, ONNX_ARTIFACT) });
      const t1 = performance.now();
      const plaintext = await decryptVerified(this.registry.keyring, manifest, ONNX_ARTIFACT, body);
      const t2 = performance.now();
      const session = await this.createSession(plaintext);
      const t3 = performance.now();
      const loaded: LoadedModel = { manifest, session, timings: { fetchMs: t1 - t0, decryptMs: t2 - t1, sessionMs: t3 - t2 } };
      this.loads += 1;
      this.props.onLoad?.(loaded);
      return loaded;
    } catch (error) {
      if (error instanceof IntegrityError) {
        throw new ModelUnavailableError(`${where} cannot be served: its artifact failed the integrity checks.`, { cause: error });
      }
      if (error instanceof NotFoundError) {
        throw new ModelUnavailableError(`${where} cannot be served: its ${ONNX_ARTIFACT} is missing.`, { cause: error });
      }
      if (error instanceof DlopsError) throw error;
      throw new ModelUnavailableError(`${where} cannot be loaded right now.`, { cause: error });
    }
  }
}
