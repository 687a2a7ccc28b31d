import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Storage } from '../../lib/storage';
import { NO_BUNDLING, statementsOfRole, type CfnTemplate } from './support';

let stack: Stack;
let storage: Storage;
let template: Template;
let json: CfnTemplate;
let reader: iam.Role;
let writer: iam.Role;

beforeAll(() => {
  const app = new App({ context: NO_BUNDLING });
  stack = new Stack(app, 'S', { env: { region: 'eu-west-1', account: '123456789012' } });
  storage = new Storage(stack, 'Storage');
  reader = new iam.Role(stack, 'Reader', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  writer = new iam.Role(stack, 'Writer', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  storage.grantObjects(reader, storage.modelBucket, { read: ['models/'], list: ['models/'] });
  storage.grantModelDecrypt(reader);
  storage.grantObjects(writer, storage.modelBucket, { write: ['models/'] });
  storage.grantModelEncrypt(writer);
  template = Template.fromStack(stack);
  json = template.toJSON() as CfnTemplate;
});

const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);

describe('key', () => {
  test('is customer-managed with rotation', () => {
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('the key policy names the principals that may use it, under conditions', () => {
    const policy = json.Resources[id(storage.key)].Properties!.KeyPolicy.Statement as any[];
    const forReader = policy.filter((s) => JSON.stringify(s.Principal).includes(id(reader)));
    expect(forReader.length).toBeGreaterThan(0);
    for (const s of forReader) expect(s.Condition).toBeDefined();
    const decrypt = forReader.find((s) => s.Action === 'kms:Decrypt' && s.Condition.Null);
    expect(decrypt.Condition).toEqual({ Null: { 'kms:EncryptionContext:model': 'false' } });
  });
});

describe('buckets', () => {
  test.each([['data'], ['model']])('%s bucket: SSE-KMS with the key and bucket keys, versioned, block public, access logs', (which) => {
    const bucket = which === 'data' ? storage.dataBucket : storage.modelBucket;
    expect(json.Resources[id(bucket)].Properties).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [id(storage.key), 'Arn'] } } },
        ],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LoggingConfiguration: { DestinationBucketName: { Ref: id(storage.accessLogBucket) } },
    });
  });

  test.each([['data'], ['model'], ['log']])('%s bucket policy denies any request without TLS', (which) => {
    const bucket = which === 'data' ? storage.dataBucket : which === 'model' ? storage.modelBucket : storage.accessLogBucket;
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id(bucket) },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  test('data and models are retained when the stack goes', () => {
    expect(json.Resources[id(storage.dataBucket)].DeletionPolicy).toBe('Retain');
    expect(json.Resources[id(storage.modelBucket)].DeletionPolicy).toBe('Retain');
    expect(json.Resources[id(storage.key)].DeletionPolicy).toBe('Retain');
  });
});

describe('grants', () => {
  test('a reader gets GetObject on models/* only, ListBucket under models/, and no write', () => {
    const statements = statementsOfRole(json, id(reader));
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions).not.toContain('s3:PutObject');
    expect(actions).not.toContain('s3:DeleteObject');
    expect(actions).not.toContain('kms:Encrypt');
    expect(actions).not.toContain('kms:GenerateDataKey');
    const get = statements.find((s) => JSON.stringify(s.Action).includes('s3:GetObject'));
    expect(JSON.stringify(get.Resource)).toContain('/models/*');
    const list = statements.find((s) => s.Action === 's3:ListBucket');
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['models/*'] } });
  });

  test('every kms:Decrypt of the reader is conditioned: via S3 for the bucket, or a model encryption context', () => {
    const decrypts = statementsOfRole(json, id(reader)).filter((s) => JSON.stringify(s.Action).includes('kms:Decrypt'));
    expect(decrypts).toHaveLength(2);
    for (const s of decrypts) expect(s.Condition).toBeDefined();
    const viaS3 = decrypts.find((s) => s.Condition.StringEquals);
    expect(viaS3.Condition.StringEquals).toEqual({ 'kms:ViaService': 's3.eu-west-1.amazonaws.com' });
    expect(JSON.stringify(viaS3.Condition.StringLike['kms:EncryptionContext:aws:s3:arn'])).toContain(id(storage.modelBucket));
    expect(decrypts.find((s) => s.Condition.Null).Condition).toEqual({ Null: { 'kms:EncryptionContext:model': 'false' } });
  });

  test('a writer may encrypt only under a model context and put objects under models/', () => {
    const statements = statementsOfRole(json, id(writer));
    const encrypt = statements.find((s) => JSON.stringify(s.Action).includes('kms:Encrypt'));
    expect([...encrypt.Action].sort()).toEqual(['kms:Encrypt', 'kms:GenerateDataKey']);
    expect(encrypt.Condition).toEqual({ Null: { 'kms:EncryptionContext:model': 'false' } });
    const put = statements.find((s) => JSON.stringify(s.Action).includes('s3:PutObject'));
    expect(JSON.stringify(put.Resource)).toContain('/models/*');
  });
});

describe('StorageProps validation', () => {
  const fresh = () => new Stack(new App({ context: NO_BUNDLING }), 'V');
  test('noncurrentVersionDays below 1 throws', () => {
    expect(() => new Storage(fresh(), 'S', { noncurrentVersionDays: 0 })).toThrow(/noncurrentVersionDays must be a whole number of days of at least 1. Received 0./);
  });
  test('accessLogDays that is not whole throws', () => {
    expect(() => new Storage(fresh(), 'S', { accessLogDays: 1.5 })).toThrow(/accessLogDays must be a whole number of days of at least 1. Received 1.5./);
  });
  test('removalPolicy DESTROY is honoured', () => {
    const s = fresh();
    const st = new Storage(s, 'S', { removalPolicy: RemovalPolicy.DESTROY });
    expect((Template.fromStack(s).toJSON() as CfnTemplate).Resources[s.getLogicalId(st.dataBucket.node.defaultChild as never)].DeletionPolicy).toBe('Delete');
  });
});
