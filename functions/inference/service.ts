/**
 * The inference API behind API Gateway (REST, Lambda proxy integration): routes, body checks,
 * model loading through the ModelStore, ONNX Runtime, and the answers of both protocols.
 *
 *   GET  /v2                                        server metadata
 *   GET  /v2/health/live | /v2/health/ready         {"live": true} | {"ready": true}
 *   GET  /v2/models/{name}[/versions/{v}]           model metadata
 *   GET  /v2/models/{name}[/versions/{v}]/ready     {"name", "ready": true} once the version loads
 *   POST /v2/models/{name}[/versions/{v}]/infer     Open Inference Protocol infer
 *   GET  /v1/models/{name}                          TF Serving model status
 *   POST /v1/models/{name}[/versions/{v}|/labels/{alias}]:predict   TF Serving predict
 *
 * {v} is a version number or an alias name; without it the default alias (production) is served.
 * Errors are {"error": "..."}: 400 bad input, 404 unknown model/version/route, 405 wrong method,
 * 413 body or batch too large, 415 not JSON, 503 model cannot be loaded, 500 anything else
 * (with a fixed message: causes go to the log, never to the caller).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { randomUUID } from 'node:crypto';
import { BadRequestError, describeError, httpStatusOf, NotFoundError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../core/errors';
import { listVersions } from '../core/registry';
import { ModelStore, ort, type LoadedModel } from './models';
import { labelsOf, modelMetadata, normalize, parseTfServingRequest, parseV2Request, tfServingResponse, v2Response, type InputBatch, type Prediction } from './protocol';

export interface InferenceServiceProps {
  readonly store: ModelStore;
  /**
   * Largest batch per request.
   * @default 256
   */
  readonly maxBatch?: number;
  /**
   * Largest request body in bytes.
   * @default 6 MiB - the Lambda synchronous invocation payload limit
   */
  readonly maxBodyBytes?: number;
  /** @default - no logging */
  readonly logger?: Logger;
  /** @default - no metrics */
  readonly metrics?: Metrics;
}

type Handler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

const NAME = '([^/:]+)';
const ROUTES: Array<{ method: string; pattern: RegExp; route: string }> = [
  { method: 'GET', pattern: /^\/v2\/?$/, route: 'server-metadata' },
  { method: 'GET', pattern: /^\/v2\/health\/live$/, route: 'live' },
  { method: 'GET', pattern: /^\/v2\/health\/ready$/, route: 'ready' },
  { method: 'GET', pattern: new RegExp(`^/v2/models/${NAME}(?:/versions/${NAME})?/ready$`), route: 'model-ready' },
  { method: 'POST', pattern: new RegExp(`^/v2/models/${NAME}(?:/versions/${NAME})?/infer$`), route: 'infer' },
  { method: 'GET', pattern: new RegExp(`^/v2/models/${NAME}(?:/versions/${NAME})?$`), route: 'model-metadata' },
  { method: 'POST', pattern: new RegExp(`^/v1/models/${NAME}(?:/(?:versions|labels)/${NAME})?:predict$`), route: 'predict' },
  { method: 'GET', pattern: new RegExp(`^/v1/models/${NAME}(?:/(?:versions|labels)/${NAME})?$`), route: 'tf-status' },
];

function json(statusCode: number, value: unknown): APIGatewayProxyResult {
  return { statusCode, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) };
}

function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) if (key.toLowerCase() === wanted && value !== undefined) return value;
  return undefined;
}

/** The JSON body: 413 over the limit, 415 when declared as something else, 400 when it does not parse. */
export function readJsonBody(event: APIGatewayProxyEvent, maxBodyBytes: number): unknown {
  const raw = event.body === null || event.body === undefined ? Buffer.alloc(0) : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  if (raw.length > maxBodyBytes) throw new PayloadTooLargeError(`The request body has ${raw.length} bytes; the limit is ${maxBodyBytes}.`);
  const contentType = header(event, 'content-type');
  if (contentType !== undefined) {
    const type = contentType.split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json' && !type.endsWith('+json')) {
      throw new UnsupportedMediaTypeError(`Content-Type ${type} is not supported: send application/json.`);
    }
  }
  if (raw.length === 0) throw new BadRequestError('The request body is empty: send a JSON object.');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new BadRequestError(`The request body is not valid JSON: ${(error as Error).message}.`);
  }
}

export function createInferenceService(props: InferenceServiceProps): Handler {
  const { store, logger, metrics } = props;
  const maxBatch = props.maxBatch ?? 256;
  const maxBodyBytes = props.maxBodyBytes ?? 6 * 1024 * 1024;
  let coldStart = true;

  async function predict(loaded: LoadedModel, input: InputBatch): Promise<Prediction> {
    const { Tensor } = await ort();
    const manifest = loaded.manifest;
    const normalized = normalize(input, manifest.normalization);
    const started = performance.now();
    const feeds = { [manifest.input.name]: new Tensor('float32', normalized, [input.batch, ...manifest.input.shape.slice(1)]) };
    const results = await loaded.session.run(feeds);
    const tensor = results[manifest.output.name] ?? results[loaded.session.outputNames[0]!]!;
    const output = Float32Array.from(tensor.data as Float32Array);
    metrics?.addMetric('InferenceLatency', MetricUnit.Milliseconds, performance.now() - started);
    metrics?.addMetric('InferenceRows', MetricUnit.Count, input.batch);
    const width = output.length / input.batch;
    const labels = manifest.task === 'classification' ? labelsOf(output, input.batch, manifest.classNames) : undefined;
    return { batch: input.batch, output, width, ...(labels ? { labels } : {}) };
  }

  async function route(event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
    const method = event.httpMethod.toUpperCase();
    const path = event.path.replace(/\/+$/, '') || '/';
    const matched = ROUTES.filter((r) => r.pattern.test(path));
    if (matched.length === 0) throw new NotFoundError(`No route for ${method} ${path}.`);
    const hit = matched.find((r) => r.method === method);
    if (hit === undefined) return json(405, { error: `${method} is not allowed on ${path}; use ${matched.map((r) => r.method).join(' or ')}.` });
    const [, rawName, rawRef] = hit.pattern.exec(path) ?? [];
    const name = rawName === undefined ? undefined : decodeURIComponent(rawName);
    const ref = rawRef === undefined ? undefined : decodeURIComponent(rawRef);

    switch (hit.route) {
      case 'server-metadata':
        return json(200, { name: 'dlops', version: process.env.DLOPS_CODE_VERSION ?? 'dev', extensions: [] });
      case 'live':
        return json(200, { live: true });
      case 'ready':
        return json(200, { ready: true });
      case 'model-metadata': {
        const version = await store.resolve(name!, ref);
        const manifest = await store.manifest(name!, version);
        const versions = ref === undefined ? await listVersions(store.registry, name!) : [version];
        return json(200, modelMetadata(manifest, versions));
      }
      case 'model-ready': {
        const version = await store.resolve(name!, ref);
        await store.load(name!, version);
        return json(200, { name: name!, version, ready: true });
      }
      case 'tf-status': {
        const version = await store.resolve(name!, ref);
        return json(200, { model_version_status: [{ version, state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } }] });
      }
      case 'infer': {
        const body = readJsonBody(event, maxBodyBytes);
        const version = await store.resolve(name!, ref);
        const manifest = await store.manifest(name!, version);
        const request = parseV2Request(body, manifest, maxBatch);
        const loaded = await store.load(name!, version);
        const prediction = await predict(loaded, request.input);
        return json(200, v2Response(manifest, request.id ?? randomUUID(), request.outputs, prediction));
      }
      case 'predict': {
        const body = readJsonBody(event, maxBodyBytes);
        const version = await store.resolve(name!, ref);
        const manifest = await store.manifest(name!, version);
        const request = parseTfServingRequest(body, manifest, maxBatch);
        const loaded = await store.load(name!, version);
        return json(200, tfServingResponse(request.format, await predict(loaded, request.input)));
      }
      default:
        throw new NotFoundError(`No route for ${method} ${path}.`);
    }
  }

  return async (event) => {
    if (coldStart) {
      coldStart = false;
      metrics?.addMetric('ColdStart', MetricUnit.Count, 1);
    }
    const started = performance.now();
    try {
      return await route(event);
    } catch (error) {
      const status = httpStatusOf(error);
      const { name, message } = describeError(error);
      if (status >= 500) {
        const cause = error instanceof Error && error.cause !== undefined ? describeError(error.cause) : undefined;
        logger?.error('Request failed', { path: event.path, method: event.httpMethod, error: { name, message }, cause });
      } else {
        logger?.info('Request refused', { path: event.path, method: event.httpMethod, status, error: message });
      }
      return json(status, { error: status === 500 ? 'Internal error: the cause is in the function log.' : message });
    } finally {
      metrics?.addMetric('RequestLatency', MetricUnit.Milliseconds, performance.now() - started);
      metrics?.publishStoredMetrics();
    }
  };
}

/** Metrics and a log line for each model load: fetch, decrypt and session creation apart. */
export function reportLoad(loaded: LoadedModel, logger?: Logger, metrics?: Metrics): void {
  const { fetchMs, decryptMs, sessionMs } = loaded.timings;
  metrics?.addMetric('ModelLoadFetch', MetricUnit.Milliseconds, fetchMs);
  metrics?.addMetric('ModelLoadDecrypt', MetricUnit.Milliseconds, decryptMs);
  metrics?.addMetric('ModelLoadSession', MetricUnit.Milliseconds, sessionMs);
  logger?.info('Model loaded', { model: loaded.manifest.model, version: loaded.manifest.version, fetchMs, decryptMs, sessionMs });
}
