import type { APIGatewayProxyEvent } from 'aws-lambda';
import { matchResource, startApiAdapter, toProxyEvent, type ApiAdapter, type ProxyHandler } from '../../local/api-adapter';

describe('resource matching', () => {
  const resources = ['/v2/health/live', '/v2/models/{name}', '/v2/models/{name}/infer', '/{proxy+}'];
  test('literal resources win over variables, variables over the greedy proxy', () => {
    expect(matchResource(resources, '/v2/health/live')).toEqual({ resource: '/v2/health/live', pathParameters: null });
    expect(matchResource(resources, '/v2/models/iris/infer')).toEqual({ resource: '/v2/models/{name}/infer', pathParameters: { name: 'iris' } });
    expect(matchResource(resources, '/v1/models/iris:predict')).toEqual({ resource: '/{proxy+}', pathParameters: { proxy: 'v1/models/iris:predict' } });
  });
  test('a path no resource covers matches nothing', () => {
    expect(matchResource(['/v2/models/{name}'], '/v2/other/x/y')).toBeUndefined();
  });
});

describe('proxy event', () => {
  test('given headers, a repeated query parameter and a JSON body, the event carries them as API Gateway does', () => {
    const event = toProxyEvent(
      { method: 'POST', url: '/v2/models/iris/infer?a=1&a=2&b=x', rawHeaders: ['Content-Type', 'application/json', 'X-Multi', 'one', 'X-Multi', 'two'] },
      Buffer.from('{"inputs":[]}'),
      { resources: ['/v2/models/{name}/infer'], stage: 'prod', binaryMediaTypes: [] },
    )!;
    expect(event.resource).toBe('/v2/models/{name}/infer');
    expect(event.path).toBe('/v2/models/iris/infer');
    expect(event.httpMethod).toBe('POST');
    expect(event.pathParameters).toEqual({ name: 'iris' });
    expect(event.headers).toEqual({ 'Content-Type': 'application/json', 'X-Multi': 'two' });
    expect(event.multiValueHeaders['X-Multi']).toEqual(['one', 'two']);
    expect(event.queryStringParameters).toEqual({ a: '2', b: 'x' });
    expect(event.multiValueQueryStringParameters).toEqual({ a: ['1', '2'], b: ['x'] });
    expect(event.body).toBe('{"inputs":[]}');
    expect(event.isBase64Encoded).toBe(false);
    expect(event.requestContext.stage).toBe('prod');
    expect(event.requestContext.path).toBe('/prod/v2/models/iris/infer');
    expect(event.requestContext.resourcePath).toBe('/v2/models/{name}/infer');
  });
  test('an empty body is null, no query is null, binary media types are base64', () => {
    const get = toProxyEvent({ method: 'GET', url: '/x', rawHeaders: [] }, Buffer.alloc(0), { resources: ['/{proxy+}'], stage: 'local', binaryMediaTypes: [] })!;
    expect(get.body).toBeNull();
    expect(get.queryStringParameters).toBeNull();
    const bin = toProxyEvent({ method: 'PUT', url: '/x', rawHeaders: ['content-type', 'application/octet-stream'] }, Buffer.from([0, 255, 1]), {
      resources: ['/{proxy+}'],
      stage: 'local',
      binaryMediaTypes: ['application/*'],
    })!;
    expect(bin.isBase64Encoded).toBe(true);
    expect(Buffer.from(bin.body!, 'base64')).toEqual(Buffer.from([0, 255, 1]));
  });
});

describe('HTTP round trip', () => {
  let api: ApiAdapter;
  const seen: APIGatewayProxyEvent[] = [];
  const handler: ProxyHandler = async (event, context) => {
    seen.push(event);
    if (event.path === '/boom') throw new Error('handler bug');
    if (event.path === '/binary') return { statusCode: 200, headers: { 'Content-Type': 'application/octet-stream' }, body: Buffer.from([1, 2, 3]).toString('base64'), isBase64Encoded: true };
    return {
      statusCode: 201,
      headers: { 'Content-Type': 'application/json' },
      multiValueHeaders: { 'Set-Cookie': ['a=1', 'b=2'] },
      body: JSON.stringify({ path: event.path, method: event.httpMethod, body: event.body, remaining: context.getRemainingTimeInMillis() > 0 }),
    };
  };
  beforeAll(async () => {
    api = await startApiAdapter({ handler, maxBodyBytes: 1024, onError: () => undefined });
  });
  afterAll(async () => {
    await api.stop();
  });

  test('the handler result becomes the response (status, headers, multi-value headers, body)', async () => {
    const response = await fetch(`${api.url}/v2/models/iris/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"x":1}' });
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await response.json()).toEqual({ path: '/v2/models/iris/infer', method: 'POST', body: '{"x":1}', remaining: true });
    expect(seen.at(-1)!.pathParameters).toEqual({ proxy: 'v2/models/iris/infer' });
  });
  test('a base64 result is decoded to bytes', async () => {
    const response = await fetch(`${api.url}/binary`);
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
  });
  test('a throwing handler is a 502 without the error text, as API Gateway answers', async () => {
    const response = await fetch(`${api.url}/boom`);
    expect(response.status).toBe(502);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ message: 'Internal server error' });
    expect(text).not.toContain('handler bug');
  });
  test('a body over the limit is 413 before the handler runs', async () => {
    const before = seen.length;
    const response = await fetch(`${api.url}/big`, { method: 'POST', body: 'x'.repeat(2048) });
    expect(response.status).toBe(413);
    expect(seen.length).toBe(before);
  });
});
