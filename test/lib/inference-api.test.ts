import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { DlopsStack } from '../../lib/dlops-stack';
import { InferenceApi, type InferenceApiProps } from '../../lib/inference-api';
import { actionsOf, buildStack, NO_BUNDLING, roleIdOfFunction, statementsOfRole, type CfnTemplate } from './support';

let stack: DlopsStack;
let template: Template;
let json: CfnTemplate;

beforeAll(() => {
  ({ stack, template } = buildStack());
  json = template.toJSON() as CfnTemplate;
});

const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);

/** "METHOD /full/path" of every API method of a template. */
function routes(t: CfnTemplate): string[] {
  const resources = Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::ApiGateway::Resource');
  const pathOf = (ref: unknown): string => {
    const logical = (ref as { Ref?: string }).Ref;
    if (logical === undefined) return '';
    const r = resources.find(([lid]) => lid === logical);
    if (!r) return '';
    return `${pathOf(r[1].Properties!.ParentId)}/${r[1].Properties!.PathPart}`;
  };
  return Object.values(t.Resources)
    .filter((r) => r.Type === 'AWS::ApiGateway::Method')
    .map((m) => `${m.Properties!.HttpMethod} ${pathOf(m.Properties!.ResourceId) || '/'}`)
    .sort();
}

describe('routes', () => {
  test('are the Open Inference Protocol v2 routes and TF Serving predict (as a greedy proxy)', () => {
    expect(routes(json)).toEqual(
      [
        'GET /v2',
        'GET /v2/health/live',
        'GET /v2/health/ready',
        'GET /v2/models/{name}',
        'GET /v2/models/{name}/ready',
        'POST /v2/models/{name}/infer',
        'GET /v2/models/{name}/versions/{version}',
        'GET /v2/models/{name}/versions/{version}/ready',
        'POST /v2/models/{name}/versions/{version}/infer',
        'GET /v1/models/{proxy+}',
        'POST /v1/models/{proxy+}',
      ].sort(),
    );
  });

  test('every method is IAM-authorized and proxies to the inference function', () => {
    const methods = Object.values(json.Resources).filter((r) => r.Type === 'AWS::ApiGateway::Method');
    expect(methods).toHaveLength(11);
    for (const m of methods) {
      expect(m.Properties!.AuthorizationType).toBe('AWS_IAM');
      expect(m.Properties!.Integration.Type).toBe('AWS_PROXY');
      expect(JSON.stringify(m.Properties!.Integration.Uri)).toContain(id(stack.inference.function));
    }
  });

  test('infer methods validate the body against a JSON schema model; path parameters are required', () => {
    const infer = Object.values(json.Resources).filter((r) => r.Type === 'AWS::ApiGateway::Method' && r.Properties!.HttpMethod === 'POST');
    for (const m of infer) {
      expect(m.Properties!.RequestValidatorId).toBeDefined();
      expect(m.Properties!.RequestModels['application/json']).toBeDefined();
    }
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
    template.hasResourceProperties('AWS::ApiGateway::Model', { Name: 'InferenceRequestV2', Schema: Match.objectLike({ required: ['inputs'] }) });
    template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'POST',
      RequestParameters: { 'method.request.path.name': true, 'method.request.path.version': true },
    });
  });
});

describe('stage', () => {
  test('is REGIONAL by default with throttling, X-Ray, execution logging without bodies, and JSON access logs', () => {
    template.hasResourceProperties('AWS::ApiGateway::RestApi', { EndpointConfiguration: { Types: ['REGIONAL'] } });
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: { 'Fn::GetAtt': [id(stack.inference.accessLogs), 'Arn'] }, Format: Match.stringLikeRegexp('requestId') },
      MethodSettings: [
        Match.objectLike({ LoggingLevel: 'INFO', DataTraceEnabled: false, MetricsEnabled: true, ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 }),
      ],
    });
  });

  test('errors API Gateway answers itself come back as {"error": ...}', () => {
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'DEFAULT_4XX',
      ResponseTemplates: { 'application/json': '{"error": $context.error.messageString}' },
    });
  });
});

describe('inference function and role', () => {
  test('runs on x86_64 with MODEL_BUCKET and KMS_KEY_ARN, within API Gateway timeout', () => {
    const fn = json.Resources[id(stack.inference.function)].Properties!;
    expect(fn.Architectures).toEqual(['x86_64']);
    expect(fn.Runtime).toBe('nodejs22.x');
    expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
    expect(fn.Timeout).toBeLessThanOrEqual(29);
    expect(fn.Environment.Variables).toMatchObject({ MODEL_BUCKET: { Ref: id(stack.storage.modelBucket) }, KMS_KEY_ARN: { 'Fn::GetAtt': [id(stack.storage.key), 'Arn'] } });
    expect(fn.Environment.Variables.DATA_BUCKET).toBeUndefined();
  });

  test('the inference role cannot write or delete anything, and reads only models/* of the model bucket', () => {
    const statements = statementsOfRole(json, roleIdOfFunction(json, id(stack.inference.function)));
    const actions = statements.flatMap(actionsOf);
    for (const forbidden of ['s3:PutObject', 's3:DeleteObject', 's3:*', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:*']) expect(actions).not.toContain(forbidden);
    const s3Statements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3Statements.flatMap(actionsOf).sort()).toEqual(['s3:GetObject', 's3:GetObjectVersion', 's3:ListBucket']);
    const text = JSON.stringify(s3Statements);
    expect(text).toContain(id(stack.storage.modelBucket));
    expect(text).not.toContain(id(stack.storage.dataBucket));
    const get = s3Statements.find((s) => actionsOf(s).includes('s3:GetObject'));
    expect(get.Resource).toEqual({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [id(stack.storage.modelBucket), 'Arn'] }, '/models/*']] });
  });

  test('the inference role decrypts only under conditions: S3 SSE of the model bucket, or a model encryption context', () => {
    const kmsStatements = statementsOfRole(json, roleIdOfFunction(json, id(stack.inference.function))).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kmsStatements.length).toBe(2);
    for (const s of kmsStatements) {
      expect(actionsOf(s)).toEqual(['kms:Decrypt']);
      expect(s.Condition).toBeDefined();
    }
    expect(kmsStatements.map((s) => s.Condition)).toContainEqual({ Null: { 'kms:EncryptionContext:model': 'false' } });
  });
});

function buildApi(props: Partial<InferenceApiProps>, withVpc = true) {
  const app = new App({ context: NO_BUNDLING });
  const s = new Stack(app, 'A', { env: { account: '123456789012', region: 'us-east-1' } });
  const vpc = withVpc ? new ec2.Vpc(s, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'i', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] }) : undefined;
  const api = new InferenceApi(s, 'Inference', {
    modelBucket: s3.Bucket.fromBucketName(s, 'M', 'dlops-models'),
    key: kms.Key.fromKeyArn(s, 'K', 'arn:aws:kms:us-east-1:123456789012:key/abc'),
    vpc,
    ...props,
  });
  return { s, api, template: Template.fromStack(s) };
}

describe('options', () => {
  let privateApi: ReturnType<typeof buildApi>;
  let keyApi: ReturnType<typeof buildApi>;
  beforeAll(() => {
    privateApi = buildApi({ endpointType: 'private', allowedCidrs: ['10.20.0.0/16'] });
    keyApi = buildApi({ auth: 'apiKey' }, false);
  });

  test('private: PRIVATE endpoint type through an execute-api interface endpoint, and a policy allowing only that endpoint', () => {
    const t = privateApi.template;
    const endpointId = privateApi.s.getLogicalId(privateApi.api.endpoint!.node.defaultChild as never);
    t.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Interface', ServiceName: 'com.amazonaws.us-east-1.execute-api', PrivateDnsEnabled: true });
    t.hasResourceProperties('AWS::ApiGateway::RestApi', {
      EndpointConfiguration: { Types: ['PRIVATE'], VpcEndpointIds: [{ Ref: endpointId }] },
      Policy: {
        Statement: [
          Match.objectLike({ Effect: 'Allow', Action: 'execute-api:Invoke', Condition: { StringEquals: { 'aws:SourceVpce': { Ref: endpointId } } } }),
          Match.objectLike({ Effect: 'Deny', Principal: { AWS: '*' }, Action: 'execute-api:Invoke', Condition: { StringNotEquals: { 'aws:SourceVpce': { Ref: endpointId } } } }),
        ],
      },
    });
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.20.0.0/16', FromPort: 443, ToPort: 443, IpProtocol: 'tcp' })],
    });
  });

  test('apiKey: methods require an API key (no IAM), with a usage plan bound to the stage and a key', () => {
    const t = keyApi.template;
    const methods = Object.values((t.toJSON() as CfnTemplate).Resources).filter((r) => r.Type === 'AWS::ApiGateway::Method');
    for (const m of methods) {
      expect(m.Properties!.ApiKeyRequired).toBe(true);
      expect(m.Properties!.AuthorizationType).toBe('NONE');
    }
    t.resourceCountIs('AWS::ApiGateway::UsagePlan', 1);
    t.hasResourceProperties('AWS::ApiGateway::UsagePlan', { Throttle: { RateLimit: 50, BurstLimit: 100 }, ApiStages: [Match.objectLike({ Stage: Match.anyValue() })] });
    t.resourceCountIs('AWS::ApiGateway::ApiKey', 1);
    t.resourceCountIs('AWS::ApiGateway::UsagePlanKey', 1);
  });
});

describe('InferenceApiProps validation', () => {
  test('private without a VPC throws', () => {
    expect(() => buildApi({ endpointType: 'private' }, false)).toThrow(/vpc is required when endpointType is 'private'. Received undefined./);
  });
  test('an unknown auth throws', () => {
    expect(() => buildApi({ auth: 'cognito' as never })).toThrow(/auth must be 'iam' or 'apiKey'. Received "cognito"./);
  });
  test('an unknown endpoint type throws', () => {
    expect(() => buildApi({ endpointType: 'edge' as never })).toThrow(/endpointType must be 'regional' or 'private'. Received "edge"./);
  });
  test('throttlingRateLimit 0 throws', () => {
    expect(() => buildApi({ throttlingRateLimit: 0 })).toThrow(/throttlingRateLimit must be greater than 0. Received 0./);
  });
  test('throttlingBurstLimit 0 throws', () => {
    expect(() => buildApi({ throttlingBurstLimit: 0 })).toThrow(/throttlingBurstLimit must be a whole number of at least 1. Received 0./);
  });
});
