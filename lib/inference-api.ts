import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ENV } from '../functions/core/env';
import { DlopsFunction } from './dlops-function';

export type ApiAuth = 'iam' | 'apiKey';
export type ApiEndpointType = 'regional' | 'private';

export interface InferenceApiProps {
  readonly modelBucket: s3.IBucket;
  /** The key model artifacts are encrypted with (KMS_KEY_ARN). Decrypt access is granted by the stack. */
  readonly key: kms.IKey;
  /**
   * How callers authenticate.
   * @default 'iam' - every method requires SigV4-signed requests (AWS_IAM); 'apiKey' requires an x-api-key header of a usage plan instead
   */
  readonly auth?: ApiAuth;
  /**
   * Where the API is reachable.
   * @default 'regional' - a public regional endpoint; 'private' makes it reachable only through an execute-api interface endpoint in `vpc`
   */
  readonly endpointType?: ApiEndpointType;
  /** The VPC of the execute-api interface endpoint. Required when endpointType is 'private'. @default - none (regional endpoint) */
  readonly vpc?: ec2.IVpc;
  /** Subnets of the interface endpoint. @default - the VPC's private or isolated subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * Who may reach the interface endpoint on 443 (e.g. the on-premises network's CIDR).
   * @default - the VPC's CIDR
   */
  readonly allowedCidrs?: string[];
  /** Steady-state requests per second of the stage. @default 50 */
  readonly throttlingRateLimit?: number;
  /** Burst of the stage. @default 100 */
  readonly throttlingBurstLimit?: number;
  /** Memory of the inference function (CPU scales with it). @default 3008 */
  readonly memorySize?: number;
  /** Days access and function logs are kept. @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** Stage name. @default 'prod' */
  readonly stageName?: string;
}

/**
 * The inference REST API: Open Inference Protocol v2 routes and TF Serving's `:predict`, all
 * proxied to one Lambda function that serves ONNX models from the encrypted registry.
 */
export class InferenceApi extends Construct {
  public readonly api: apigw.RestApi;
  public readonly function: DlopsFunction;
  public readonly accessLogs: logs.LogGroup;
  public readonly endpoint?: ec2.InterfaceVpcEndpoint;
  public readonly usagePlan?: apigw.UsagePlan;
  public readonly apiKey?: apigw.IApiKey;

  constructor(scope: Construct, id: string, props: InferenceApiProps) {
    super(scope, id);
    const auth = props.auth ?? 'iam';
    const endpointType = props.endpointType ?? 'regional';
    const throttlingRateLimit = props.throttlingRateLimit ?? 50;
    const throttlingBurstLimit = props.throttlingBurstLimit ?? 100;
    const memorySize = props.memorySize ?? 3008;
    const logRetention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;
    const stageName = props.stageName ?? 'prod';
    if (auth !== 'iam' && auth !== 'apiKey') throw new Error(`auth must be 'iam' or 'apiKey'. Received ${JSON.stringify(auth)}.`);
    if (endpointType !== 'regional' && endpointType !== 'private') {
      throw new Error(`endpointType must be 'regional' or 'private'. Received ${JSON.stringify(endpointType)}.`);
    }
    if (endpointType === 'private' && !props.vpc) throw new Error("vpc is required when endpointType is 'private'. Received undefined.");
    if (!(throttlingRateLimit > 0)) throw new Error(`throttlingRateLimit must be greater than 0. Received ${throttlingRateLimit}.`);
    if (!Number.isInteger(throttlingBurstLimit) || throttlingBurstLimit < 1) {
      throw new Error(`throttlingBurstLimit must be a whole number of at least 1. Received ${throttlingBurstLimit}.`);
    }

    this.function = new DlopsFunction(this, 'Inference', {
      entry: 'functions/inference/handler.ts',
      description: 'dlops: Open Inference Protocol v2 and TF Serving predict on ONNX Runtime',
      onnxRuntime: true,
      memorySize,
      // API Gateway gives up after 29 s.
      timeout: Duration.seconds(29),
      logRetention,
      environment: { [ENV.modelBucket]: props.modelBucket.bucketName, [ENV.kmsKeyArn]: props.key.keyArn },
    });

    let policy: iam.PolicyDocument | undefined;
    if (endpointType === 'private') {
      const vpc = props.vpc!;
      const securityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc,
        description: 'dlops inference API interface endpoint: HTTPS from the allowed networks',
        allowAllOutbound: false,
      });
      for (const cidr of props.allowedCidrs ?? [vpc.vpcCidrBlock]) {
        securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), 'HTTPS to the inference API');
      }
      this.endpoint = new ec2.InterfaceVpcEndpoint(this, 'ExecuteApiEndpoint', {
        vpc,
        service: ec2.InterfaceVpcEndpointAwsService.APIGATEWAY,
        subnets: props.vpcSubnets,
        privateDnsEnabled: true,
        securityGroups: [securityGroup],
        open: false,
      });
      // Only this endpoint may invoke; with IAM auth the caller also needs execute-api:Invoke in its own policy.
      // https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-private-api-create.html
      const principal = auth === 'iam' ? new iam.AccountRootPrincipal() : new iam.AnyPrincipal();
      policy = new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            effect: iam.Effect.ALLOW,
            principals: [principal],
            actions: ['execute-api:Invoke'],
            resources: ['execute-api:/*'],
            conditions: { StringEquals: { 'aws:SourceVpce': this.endpoint.vpcEndpointId } },
          }),
          new iam.PolicyStatement({
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: ['execute-api:Invoke'],
            resources: ['execute-api:/*'],
            conditions: { StringNotEquals: { 'aws:SourceVpce': this.endpoint.vpcEndpointId } },
          }),
        ],
      });
    }

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: logRetention, removalPolicy: RemovalPolicy.DESTROY });
    this.api = new apigw.RestApi(this, 'Api', {
      description: 'dlops inference: Open Inference Protocol v2 and TF Serving predict',
      endpointConfiguration:
        endpointType === 'private'
          ? { types: [apigw.EndpointType.PRIVATE], vpcEndpoints: [this.endpoint!] }
          : { types: [apigw.EndpointType.REGIONAL] },
      policy,
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.DESTROY,
      apiKeySourceType: auth === 'apiKey' ? apigw.ApiKeySourceType.HEADER : undefined,
      defaultMethodOptions: auth === 'iam' ? { authorizationType: apigw.AuthorizationType.IAM } : { apiKeyRequired: true },
      deployOptions: {
        stageName,
        tracingEnabled: true,
        metricsEnabled: true,
        loggingLevel: apigw.MethodLoggingLevel.INFO,
        // Request and response bodies carry model inputs: keep them out of the logs.
        dataTraceEnabled: false,
        throttlingRateLimit,
        throttlingBurstLimit,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
      },
    });

    // Errors API Gateway answers itself (auth, validation, throttling) in the same {"error"} shape as the handler's.
    for (const [name, type] of [
      ['Default4xx', apigw.ResponseType.DEFAULT_4XX],
      ['Default5xx', apigw.ResponseType.DEFAULT_5XX],
    ] as const) {
      this.api.addGatewayResponse(name, { type, templates: { 'application/json': '{"error": $context.error.messageString}' } });
    }

    const validator = this.api.addRequestValidator('Validator', { validateRequestBody: true, validateRequestParameters: true });
    const v2Request = this.api.addModel('InferenceRequestV2', {
      contentType: 'application/json',
      modelName: 'InferenceRequestV2',
      schema: {
        schema: apigw.JsonSchemaVersion.DRAFT4,
        title: 'Open Inference Protocol v2 inference request',
        type: apigw.JsonSchemaType.OBJECT,
        required: ['inputs'],
        properties: {
          id: { type: apigw.JsonSchemaType.STRING },
          parameters: { type: apigw.JsonSchemaType.OBJECT },
          inputs: {
            type: apigw.JsonSchemaType.ARRAY,
            minItems: 1,
            items: {
              type: apigw.JsonSchemaType.OBJECT,
              required: ['name', 'shape', 'datatype', 'data'],
              properties: {
                name: { type: apigw.JsonSchemaType.STRING },
                shape: { type: apigw.JsonSchemaType.ARRAY, items: { type: apigw.JsonSchemaType.INTEGER } },
                datatype: { type: apigw.JsonSchemaType.STRING },
                data: { type: apigw.JsonSchemaType.ARRAY },
              },
            },
          },
          outputs: { type: apigw.JsonSchemaType.ARRAY },
        },
      },
    });
    const v1Request = this.api.addModel('PredictRequestV1', {
      contentType: 'application/json',
      modelName: 'PredictRequestV1',
      schema: {
        schema: apigw.JsonSchemaVersion.DRAFT4,
        title: 'TF Serving predict request (row "instances" or columnar "inputs")',
        type: apigw.JsonSchemaType.OBJECT,
        anyOf: [{ required: ['instances'] }, { required: ['inputs'] }],
        properties: { instances: { type: apigw.JsonSchemaType.ARRAY, minItems: 1 }, signature_name: { type: apigw.JsonSchemaType.STRING } },
      },
    });

    const integration = new apigw.LambdaIntegration(this.function, { allowTestInvoke: false });
    const get = (resource: apigw.IResource, params: string[] = []) =>
      resource.addMethod('GET', integration, {
        requestValidator: validator,
        requestParameters: Object.fromEntries(params.map((p) => [`method.request.path.${p}`, true])),
      });
    const post = (resource: apigw.IResource, model: apigw.IModel, params: string[]) =>
      resource.addMethod('POST', integration, {
        requestValidator: validator,
        requestModels: { 'application/json': model },
        requestParameters: Object.fromEntries(params.map((p) => [`method.request.path.${p}`, true])),
      });

    const v2 = this.api.root.addResource('v2');
    get(v2);
    const health = v2.addResource('health');
    get(health.addResource('live'));
    get(health.addResource('ready'));
    const model = v2.addResource('models').addResource('{name}');
    get(model, ['name']);
    get(model.addResource('ready'), ['name']);
    post(model.addResource('infer'), v2Request, ['name']);
    const version = model.addResource('versions').addResource('{version}');
    get(version, ['name', 'version']);
    get(version.addResource('ready'), ['name', 'version']);
    post(version.addResource('infer'), v2Request, ['name', 'version']);
    // A path part cannot mix a parameter with literal text ("{name}:predict"), so TF Serving's
    // routes are a greedy proxy; the handler parses "<name>:predict" from pathParameters.proxy.
    // https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-method-settings-method-request.html#api-gateway-proxy-resource
    const v1Model = this.api.root.addResource('v1').addResource('models').addResource('{proxy+}');
    post(v1Model, v1Request, ['proxy']);
    get(v1Model, ['proxy']);

    if (auth === 'apiKey') {
      this.usagePlan = this.api.addUsagePlan('UsagePlan', {
        description: 'dlops inference callers',
        throttle: { rateLimit: throttlingRateLimit, burstLimit: throttlingBurstLimit },
        apiStages: [{ api: this.api, stage: this.api.deploymentStage }],
      });
      this.apiKey = this.api.addApiKey('ApiKey', { description: 'dlops inference default caller key' });
      this.usagePlan.addApiKey(this.apiKey);
    }
  }

  /** Lets a principal call every route (IAM auth). */
  public grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: ['execute-api:Invoke'], resourceArns: [this.api.arnForExecuteApi('*', '/*', '*')] });
  }
}
