/**
 * S3 conditional writes for the local S3 server.
 *
 * s3rver 3.7.1 ignores `If-Match` / `If-None-Match` on PutObject (a second `If-None-Match: *`
 * put succeeds), yet the registry moves aliases and claims versions with exactly those headers.
 * This proxy sits in front of s3rver and answers them as S3 does
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
 *   - `If-None-Match: *` and an object exists        -> 412 PreconditionFailed
 *   - `If-Match: <etag>` and the ETag differs         -> 412 PreconditionFailed
 *   - `If-Match: <etag>` and no object exists         -> 404 NoSuchKey
 * Conditional writes to one key are serialised (check, then write, then release), so of two
 * concurrent ones at most one can win; S3 itself may answer the loser 409 instead of 412, and
 * callers treat both as a conflict (functions/core/s3.ts).
 * Every other request, and a conditional write whose condition holds, is forwarded unchanged
 * (same method, path, headers incl. Host and the SigV4 signature, streamed body), so s3rver's
 * own behaviour and its object-created events are untouched.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface ConditionalS3ProxyProps {
  /** Where s3rver listens, e.g. `http://127.0.0.1:4568`. */
  readonly upstream: string;
  /**
   * TCP port on 127.0.0.1 for the proxy.
   * @default 0 - any free port
   */
  readonly port?: number;
}

export interface ConditionalS3Proxy {
  readonly endpoint: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** Where a request points, for path-style URLs (`/bucket/key`); undefined key for bucket-level calls. */
export function objectOfPath(rawUrl: string): { bucket: string; key?: string; query: URLSearchParams } {
  const url = new URL(rawUrl, 'http://local');
  const path = url.pathname.replace(/^\//, '');
  const slash = path.indexOf('/');
  if (slash < 0 || slash === path.length - 1) return { bucket: decodeURIComponent(path.replace(/\/$/, '')), query: url.searchParams };
  return { bucket: decodeURIComponent(path.slice(0, slash)), key: path.slice(slash + 1), query: url.searchParams };
}

/** The conditions S3 evaluates on a write, or undefined when the request is not a conditional object write. */
export function writeConditions(method: string, rawUrl: string, headers: http.IncomingHttpHeaders): { ifMatch?: string; ifNoneMatch?: string } | undefined {
  const ifMatch = headerValue(headers['if-match']);
  const ifNoneMatch = headerValue(headers['if-none-match']);
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  const { key, query } = objectOfPath(rawUrl);
  if (key === undefined) return undefined;
  // PutObject, or CompleteMultipartUpload (POST ?uploadId=); UploadPart (PUT ?partNumber=) takes no conditions.
  const isPut = method === 'PUT' && !query.has('partNumber') && !query.has('uploadId');
  const isComplete = method === 'POST' && query.has('uploadId');
  if (!isPut && !isComplete) return undefined;
  return { ifMatch, ifNoneMatch };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(',') : value;
}

/** ETags compare without quotes or a weak prefix; `If-Match` may list several. */
function etagMatches(condition: string, current: string): boolean {
  const norm = (e: string) => e.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
  return condition.split(',').some((c) => c.trim() === '*' || norm(c) === norm(current));
}

/** The decision for one conditional write given the object's current ETag (undefined = no object). */
export function evaluateConditions(
  conditions: { ifMatch?: string; ifNoneMatch?: string },
  currentETag: string | undefined,
): { ok: true } | { ok: false; status: 404 | 412; code: string; message: string; condition?: string } {
  if (conditions.ifNoneMatch !== undefined && currentETag !== undefined) {
    // S3 accepts only `*` here; an ETag list is compared as HTTP says, which `*` also satisfies.
    if (etagMatches(conditions.ifNoneMatch, currentETag)) {
      return { ok: false, status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold', condition: 'If-None-Match' };
    }
  }
  if (conditions.ifMatch !== undefined) {
    if (currentETag === undefined) return { ok: false, status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.' };
    if (!etagMatches(conditions.ifMatch, currentETag)) {
      return { ok: false, status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold', condition: 'If-Match' };
    }
  }
  return { ok: true };
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Starts the proxy on loopback in front of `upstream`. */
export async function startConditionalS3Proxy(props: ConditionalS3ProxyProps): Promise<ConditionalS3Proxy> {
  const upstream = new URL(props.upstream);
  const agent = new http.Agent({ keepAlive: true });
  // Tail of the chain of conditional writes per bucket/key; a write waits for the one before it.
  const queues = new Map<string, Promise<void>>();

  const forward = (req: IncomingMessage, res: ServerResponse): Promise<void> =>
    new Promise((resolve) => {
      const out = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders);
          answer.pipe(res);
          answer.on('end', resolve);
          answer.on('error', () => resolve());
        },
      );
      // A client that goes away mid-request must not hold its key's queue: drop the upstream call.
      res.on('close', () => {
        if (!res.writableFinished) out.destroy();
        resolve();
      });
      out.on('error', (error) => {
        if (res.destroyed) return resolve();
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`conditional S3 proxy: upstream ${props.upstream} failed: ${error.message}`);
        resolve();
      });
      req.pipe(out);
    });

  const currentETag = (bucket: string, key: string): Promise<string | undefined> =>
    new Promise((resolve, reject) => {
      // s3rver answers unsigned requests, so the check needs no credentials.
      const head = http.request({ host: upstream.hostname, port: upstream.port, method: 'HEAD', path: `/${encodeURIComponent(bucket)}/${key}`, agent }, (answer) => {
        answer.resume();
        answer.on('end', () => {
          if (answer.statusCode === 200) resolve(headerValue(answer.headers.etag) ?? '');
          else if (answer.statusCode === 404) resolve(undefined);
          else reject(new Error(`HEAD /${bucket}/${key} on the local S3 server answered ${answer.statusCode}.`));
        });
      });
      head.on('error', reject);
      head.end();
    });

  const refuse = (req: IncomingMessage, res: ServerResponse, refusal: { status: number; code: string; message: string; condition?: string }, resource: string) => {
    const requestId = randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase();
    const body =
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Error><Code>${refusal.code}</Code><Message>${xmlEscape(refusal.message)}</Message>` +
      (refusal.condition ? `<Condition>${refusal.condition}</Condition>` : '') +
      `<Resource>${xmlEscape(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`;
    // The body is not wanted; read it so the connection stays usable.
    req.resume();
    res.writeHead(refusal.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': requestId });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const conditions = writeConditions(req.method ?? 'GET', req.url ?? '/', req.headers);
    if (conditions === undefined) {
      await forward(req, res);
      return;
    }
    const { bucket, key } = objectOfPath(req.url ?? '/');
    const id = `${bucket}/${key}`;
    const before = queues.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    queues.set(id, tail);
    await before;
    try {
      const decision = evaluateConditions(conditions, await currentETag(bucket, key!));
      if (decision.ok) await forward(req, res);
      else refuse(req, res, decision, `/${id}`);
    } catch (error) {
      refuse(req, res, { status: 500, code: 'InternalError', message: (error as Error).message }, `/${id}`);
    } finally {
      release();
      if (queues.get(id) === tail) queues.delete(id);
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(props.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      agent.destroy();
    },
  };
}
