import S3rver from 's3rver';
import { mkdirSync } from 'node:fs';

export interface LocalS3Props {
  /** Folder that holds the buckets' objects. */
  readonly directory: string;
  /** Buckets to create if missing. */
  readonly buckets: string[];
  /**
   * TCP port on 127.0.0.1.
   * @default 0 - any free port
   */
  readonly port?: number;
}

export interface LocalS3 {
  readonly endpoint: string;
  readonly port: number;
  /** The underlying s3rver, for its object-created events (`server.on('event', ...)`). */
  readonly server: S3rver;
  stop(): Promise<void>;
}

/** Starts an S3-protocol server (s3rver) on loopback with the given buckets. */
export async function startLocalS3(props: LocalS3Props): Promise<LocalS3> {
  mkdirSync(props.directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: props.port ?? 0,
    silent: true,
    directory: props.directory,
    configureBuckets: props.buckets.map((name) => ({ name, configs: [] })),
  });
  const address = (await server.run()) as { port: number };
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    server,
    stop: async () => {
      await server.close();
    },
  };
}
