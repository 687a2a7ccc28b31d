/**
 * The local stand-in for API Gateway (REST API, Lambda proxy integration): an HTTP server on
 * loopback that turns each request into an `APIGatewayProxyEvent`, calls the handler module
 * in-process and turns its `APIGatewayProxyResult` back into the HTTP response.
 * Event shape: https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format
 * Used by `dlops serve` (cli/models.ts) and by the local runtime's `dlops local up`.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';

export type ProxyHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

export interface ApiAdapterProps {
  readonly handler: ProxyHandler;
  /**
   * TCP port.
   * @default 0 - any free port
   */
  readonly port?: number;
  /**
   * Interface to listen on.
   * @default '127.0.0.1' - loopback only
   */
  readonly host?: string;
  /**
   * API Gateway resource templates, e.g. `/v2/models/{name}/infer`; a request gets the first
   * that matches (literal segments before variables), as `resource` and `pathParameters`.
   * @default ['/{proxy+}'] - one greedy proxy resource, as a LambdaRestApi builds
   */
  readonly resources?: string[];
  /**
   * Stage name, seen in `requestContext.stage` and `requestContext.path`.
   * @default 'local'
   */
  readonly stage?: string;
  /**
   * Content types API Gateway treats as binary (body base64-encoded, `isBase64Encoded: true`).
   * @default [] - every body is passed as UTF-8 text, as a REST API without binaryMediaTypes does
   */
  readonly binaryMediaTypes?: string[];
  /**
   * Largest request body accepted; larger ones get 413 before the handler runs.
   * @default 10 MiB - API Gateway's payload limit
   */
  readonly maxBodyBytes?: number;
  /**
   * Name in the Lambda context.
   * @default 'dlops-local-api'
   */
  readonly functionName?: string;
  /**
   * Lambda timeout the context reports (getRemainingTimeInMillis).
   * @default 29000 - API Gateway's integration timeout
   */
  readonly timeoutMs?: number;
  /** Called when the handler throws (API Gateway then answers 502); @default - logs to stderr */
  readonly onError?: (error: unknown) => void;
}

export interface ApiAdapter {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

interface CompiledResource {
  readonly template: string;
  readonly regex: RegExp;
  readonly names: string[];
  readonly literals: number;
}

function compileResource(template: string): CompiledResource {
  const segments = template.split('/').filter((s) => s !== '');
  const names: string[] = [];
  let literals = 0;
  const parts = segments.map((segment, i) => {
    const greedy = /^\{([A-Za-z0-9_]+)\+\}$/.exec(segment);
    if (greedy) {
      if (i !== segments.length - 1) throw new Error(`Resource ${template}: a greedy variable ${segment} must be the last segment.`);
      names.push(greedy[1]!);
      return '/(.+)';
    }
    const variable = /^\{([A-Za-z0-9_]+)\}$/.exec(segment);
    if (variable) {
      names.push(variable[1]!);
      return '/([^/]+)';
    }
    literals += 1;
    return '/' + segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return { template: '/' + segments.join('/'), regex: new RegExp(`^${parts.join('') || '/'}/?$`), names, literals };
}

/** The resource a path falls under, and its path parameters (URL-decoded, as API Gateway passes them). */
export function matchResource(resources: readonly string[], path: string): { resource: string; pathParameters: Record<string, string> | null } | undefined {
  const compiled = resources.map(compileResource).sort((a, b) => b.literals - a.literals);
  for (const c of compiled) {
    const m = c.regex.exec(path);
    if (!m) continue;
    if (c.names.length === 0) return { resource: c.template, pathParameters: null };
    const params: Record<string, string> = {};
    c.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1]!)));
    return { resource: c.template, pathParameters: params };
  }
  return undefined;
}

function isBinary(contentType: string | undefined, binaryMediaTypes: readonly string[]): boolean {
  if (contentType === undefined) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return binaryMediaTypes.some((pattern) => {
    const p = pattern.toLowerCase();
    if (p === '*/*') return true;
    if (p.endsWith('/*')) return type.startsWith(p.slice(0, -1));
    return p === type;
  });
}

/** Builds the proxy event for a request whose body has been read. */
export function toProxyEvent(
  req: { method: string; url: string; rawHeaders: string[]; remoteAddress?: string },
  body: Buffer,
  options: { resources: readonly string[]; stage: string; binaryMediaTypes: readonly string[] },
): APIGatewayProxyEvent | undefined {
  const url = new URL(req.url, 'http://local');
  const path = decodeURI(url.pathname);
  const match = matchResource(options.resources, url.pathname);
  if (match === undefined) return undefined;

  // API Gateway keeps header names as the client sent them: build both maps from rawHeaders.
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    headers[name] = value;
    (multiValueHeaders[name] ??= []).push(value);
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = value;
    (multiQuery[name] ??= []).push(value);
  }
  const hasQuery = Object.keys(query).length > 0;
  const contentType = Object.entries(headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1];
  const binary = body.length > 0 && isBinary(contentType, options.binaryMediaTypes);
  const now = new Date();
  const userAgent = Object.entries(headers).find(([k]) => k.toLowerCase() === 'user-agent')?.[1] ?? null;
  return {
    resource: match.resource,
    path,
    httpMethod: req.method,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: match.pathParameters,
    stageVariables: null,
    body: body.length === 0 ? null : binary ? body.toString('base64') : body.toString('utf8'),
    isBase64Encoded: binary,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: null,
      protocol: 'HTTP/1.1',
      httpMethod: req.method,
      path: `/${options.stage}${path}`,
      stage: options.stage,
      requestId: randomUUID(),
      requestTime: now.toUTCString(),
      requestTimeEpoch: now.getTime(),
      resourceId: 'local',
      resourcePath: match.resource,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: req.remoteAddress ?? '127.0.0.1',
        user: null,
        userAgent,
        userArn: null,
      },
    },
  };
}

function lambdaContext(functionName: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  const requestId = randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Writes a handler's result as the HTTP response; a malformed result is API Gateway's 502. */
export function writeProxyResult(res: ServerResponse, result: APIGatewayProxyResult): void {
  if (result === null || typeof result !== 'object' || typeof result.statusCode !== 'number') {
    sendJson(res, 502, { message: 'Internal server error' });
    return;
  }
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name.toLowerCase()] = String(value);
  for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) headers[name.toLowerCase()] = values.map(String);
  const body = result.body === undefined || result.body === null ? Buffer.alloc(0) : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  headers['content-length'] = String(body.length);
  headers['content-type'] ??= 'application/json';
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

/** Starts the adapter. */
export async function startApiAdapter(props: ApiAdapterProps): Promise<ApiAdapter> {
  const resources = props.resources ?? ['/{proxy+}'];
  resources.forEach(compileResource); // fail at start on a bad template, not on the first request
  const stage = props.stage ?? 'local';
  const binaryMediaTypes = props.binaryMediaTypes ?? [];
  const maxBodyBytes = props.maxBodyBytes ?? 10 * 1024 * 1024;
  const functionName = props.functionName ?? 'dlops-local-api';
  const timeoutMs = props.timeoutMs ?? 29_000;
  const onError = props.onError ?? ((error: unknown) => console.error('api adapter: handler failed:', error));

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Read to the end even when too large, so the client gets the 413 rather than a reset.
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk);
    }
    if (size > maxBodyBytes) {
      sendJson(res, 413, { message: 'Request Too Long' });
      return;
    }
    const event = toProxyEvent(
      { method: req.method ?? 'GET', url: req.url ?? '/', rawHeaders: req.rawHeaders, remoteAddress: req.socket.remoteAddress },
      Buffer.concat(chunks),
      { resources, stage, binaryMediaTypes },
    );
    // API Gateway answers an unmatched path itself (403 "Missing Authentication Token").
    if (event === undefined) {
      sendJson(res, 403, { message: 'Missing Authentication Token' });
      return;
    }
    let result: APIGatewayProxyResult;
    try {
      result = await props.handler(event, lambdaContext(functionName, timeoutMs));
    } catch (error) {
      onError(error);
      sendJson(res, 502, { message: 'Internal server error' });
      return;
    }
    writeProxyResult(res, result);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      onError(error);
      if (!res.headersSent) sendJson(res, 502, { message: 'Internal server error' });
      else res.end();
    });
  });
  const host = props.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(props.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
