import S3rver from 's3rver';
import { mkdirSync } from 'node:fs';
import { startConditionalS3Proxy } from './conditional-s3';

export interface LocalS3Props {
  /** Folder that holds the buckets' objects. */
  readonly directory: string;
  /** Buckets to create if missing. */
  readonly buckets: string[];
  /**
   * TCP port on 127.0.0.1 of the endpoint clients use.
   * @default 0 - any free port
   */
  readonly port?: number;
}

export interface LocalS3 {
  /** The endpoint to give clients: it answers conditional writes (If-Match / If-None-Match) as S3 does. */
  readonly endpoint: string;
  readonly port: number;
  /** The underlying s3rver, for its object-created events (`server.on('event', ...)`). */
  readonly server: S3rver;
  /** s3rver's own endpoint, behind the conditional-write layer (it ignores those headers). */
  readonly rawEndpoint: string;
  stop(): Promise<void>;
}

/**
 * Starts an S3-protocol server (s3rver) on loopback with the given buckets, behind a small
 * layer that answers conditional writes (local/conditional-s3.ts), since s3rver ignores them.
 */
export async function startLocalS3(props: LocalS3Props): Promise<LocalS3> {
  mkdirSync(props.directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: props.directory,
    configureBuckets: props.buckets.map((name) => ({ name, configs: [] })),
  });
  const address = (await server.run()) as { port: number };
  const rawEndpoint = `http://127.0.0.1:${address.port}`;
  let proxy;
  try {
    proxy = await startConditionalS3Proxy({ upstream: rawEndpoint, port: props.port });
  } catch (error) {
    await server.close();
    throw error;
  }
  return {
    endpoint: proxy.endpoint,
    port: proxy.port,
    server,
    rawEndpoint,
    stop: async () => {
      await proxy.stop();
      await server.close();
    },
  };
}
