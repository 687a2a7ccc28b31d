import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface StorageProps {
  /**
   * What happens to the buckets and the key when the stack is deleted.
   * @default RemovalPolicy.RETAIN - data, models and the key that decrypts them outlive the stack
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Days a non-current object version is kept in the data and model buckets.
   * @default 30
   */
  readonly noncurrentVersionDays?: number;
  /**
   * Days server access logs are kept.
   * @default 365
   */
  readonly accessLogDays?: number;
}

/** What a principal may do under some prefixes of a bucket. */
export interface ObjectAccess {
  /** Key prefixes (e.g. `runs/`) whose objects may be read. */
  readonly read?: string[];
  /** Key prefixes whose objects may be written. */
  readonly write?: string[];
  /** Key prefixes whose objects may be deleted (a prefix may hold a "*" wildcard between slashes, as in the checkpoints of any run). */
  readonly delete?: string[];
  /** Key prefixes that may be listed. */
  readonly list?: string[];
}

/** The encryption-context key the Encryption SDK sets on every model artifact (DESIGN.md, "Model version"). */
export const MODEL_CONTEXT_KEY = 'model';

/**
 * The customer-managed key, the data bucket, the model bucket and the access-log bucket.
 * Access is granted only through the methods here, which scope S3 actions to key prefixes and
 * KMS actions to an encryption context, and name each principal in the key policy as well.
 */
export class Storage extends Construct {
  public readonly key: kms.Key;
  public readonly dataBucket: s3.Bucket;
  public readonly modelBucket: s3.Bucket;
  public readonly accessLogBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: StorageProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const noncurrentVersionDays = props.noncurrentVersionDays ?? 30;
    const accessLogDays = props.accessLogDays ?? 365;
    if (!Number.isInteger(noncurrentVersionDays) || noncurrentVersionDays < 1) {
      throw new Error(`noncurrentVersionDays must be a whole number of days of at least 1. Received ${noncurrentVersionDays}.`);
    }
    if (!Number.isInteger(accessLogDays) || accessLogDays < 1) {
      throw new Error(`accessLogDays must be a whole number of days of at least 1. Received ${accessLogDays}.`);
    }

    this.key = new kms.Key(this, 'Key', {
      description: 'dlops: data, prepared sets, runs and encrypted model artifacts',
      enableKeyRotation: true,
      removalPolicy,
    });

    // Server access logs cannot be delivered to an SSE-KMS bucket, hence SSE-S3 here.
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
    this.accessLogBucket = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(accessLogDays) }],
      removalPolicy,
    });

    const common: s3.BucketProps = {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogBucket,
      lifecycleRules: [
        { noncurrentVersionExpiration: Duration.days(noncurrentVersionDays), abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      removalPolicy,
    };
    this.dataBucket = new s3.Bucket(this, 'Data', {
      ...common,
      serverAccessLogsPrefix: 'data/',
      // The commit marker's "Object Created" event starts a run (lib/pipeline.ts).
      eventBridgeEnabled: true,
    });
    this.modelBucket = new s3.Bucket(this, 'Models', { ...common, serverAccessLogsPrefix: 'models/' });
  }

  /**
   * S3 object access under prefixes, plus the KMS use S3 makes on the caller's behalf for
   * SSE-KMS (only via S3 and only with this bucket's encryption context).
   */
  public grantObjects(grantee: iam.IRole, bucket: s3.IBucket, access: ObjectAccess): void {
    const read = access.read ?? [];
    const write = access.write ?? [];
    const list = access.list ?? [];
    const remove = access.delete ?? [];
    if (read.length > 0) {
      grantee.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:GetObjectVersion'], resources: read.map((p) => bucket.arnForObjects(`${p}*`)) }),
      );
    }
    if (write.length > 0) {
      grantee.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: write.map((p) => bucket.arnForObjects(`${p}*`)) }),
      );
    }
    if (remove.length > 0) {
      grantee.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: remove.map((p) => bucket.arnForObjects(`${p}*`)) }),
      );
    }
    if (list.length > 0) {
      grantee.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['s3:ListBucket'],
          resources: [bucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': list.map((p) => `${p}*`) } },
        }),
      );
    }
    const kmsActions = [...(read.length > 0 || write.length > 0 ? ['kms:Decrypt'] : []), ...(write.length > 0 ? ['kms:GenerateDataKey'] : [])];
    if (kmsActions.length === 0) return;
    // With S3 Bucket Keys the context is the bucket ARN; without, the object ARN.
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html#bucket-key-encryption-context
    const conditions = {
      StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` },
      StringLike: { 'kms:EncryptionContext:aws:s3:arn': [bucket.bucketArn, `${bucket.bucketArn}/*`] },
    };
    grantee.addToPrincipalPolicy(new iam.PolicyStatement({ actions: kmsActions, resources: [this.key.keyArn], conditions }));
    // The key policy cannot name the bucket's ARN: the bucket already depends on the key (a cycle).
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({ actions: kmsActions, principals: [grantee], resources: ['*'], conditions: { StringEquals: conditions.StringEquals } }),
    );
  }

  /**
   * Decrypting model artifacts with the Encryption SDK's KMS keyring: only data keys whose
   * encryption context names a model. (The SDK adds `aws-crypto-public-key` to the context, so
   * the condition checks that `model` is present rather than the exact context.)
   */
  public grantModelDecrypt(grantee: iam.IRole): void {
    this.grantModelKey(grantee, ['kms:Decrypt']);
  }

  /** Encrypting model artifacts with the Encryption SDK's KMS keyring, under a model context only. */
  public grantModelEncrypt(grantee: iam.IRole): void {
    this.grantModelKey(grantee, ['kms:GenerateDataKey', 'kms:Encrypt']);
  }

  private grantModelKey(grantee: iam.IRole, actions: string[]): void {
    const conditions = { Null: { [`kms:EncryptionContext:${MODEL_CONTEXT_KEY}`]: 'false' } };
    grantee.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: [this.key.keyArn], conditions }));
    this.key.addToResourcePolicy(new iam.PolicyStatement({ actions, principals: [grantee], resources: ['*'], conditions }));
  }
}
