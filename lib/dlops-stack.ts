import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { Construct } from 'constructs';
import { ApiAuth, ApiEndpointType, InferenceApi } from './inference-api';
import { Pipeline } from './pipeline';
import { Storage } from './storage';
import { TrainingCompute } from './training-compute';

/** An existing VPC described without a look-up, so synth needs no AWS credentials. */
export interface ExistingVpcProps {
  readonly vpcId: string;
  readonly availabilityZones: string[];
  /** Subnets the GPU instances (and the private API endpoint) use, one per availability zone. */
  readonly privateSubnetIds: string[];
  readonly vpcCidrBlock: string;
}

export interface DlopsStackProps extends StackProps {
  /**
   * Run training (and the private API endpoint) in this existing VPC, e.g. the one wired to the company network.
   * @default - a new VPC with isolated subnets and VPC endpoints
   */
  readonly existingVpc?: ExistingVpcProps;
  /** @default TrainingCompute's default (g5 and g6 families) */
  readonly gpuInstanceTypes?: string[];
  /** @default 64 */
  readonly maxvCpus?: number;
  /** @default 240 - a job RUNNABLE for 4 hours is cancelled */
  readonly runnableTimeoutMinutes?: number;
  /** @default 480 */
  readonly jobTimeoutMinutes?: number;
  /** @default 'regional' */
  readonly apiEndpointType?: ApiEndpointType;
  /** @default 'iam' */
  readonly apiAuth?: ApiAuth;
  /** @default - the VPC's CIDR may reach a private API */
  readonly apiAllowedCidrs?: string[];
  /** @default 'unknown' */
  readonly codeVersion?: string;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * The training image.
   * @default - built at deploy from functions/train/Dockerfile
   */
  readonly trainingImage?: ecs.ContainerImage;
}

/** dlops in one stack: storage, private GPU training, the pipeline and the inference API. */
export class DlopsStack extends Stack {
  public readonly storage: Storage;
  public readonly compute: TrainingCompute;
  public readonly pipeline: Pipeline;
  public readonly inference: InferenceApi;

  constructor(scope: Construct, id: string, props: DlopsStackProps = {}) {
    super(scope, id, props);
    const runnableTimeout = Duration.minutes(props.runnableTimeoutMinutes ?? 240);
    const jobTimeout = Duration.minutes(props.jobTimeoutMinutes ?? 480);

    this.storage = new Storage(this, 'Storage', { removalPolicy: props.removalPolicy });
    const { dataBucket, modelBucket, key } = this.storage;

    const vpc = props.existingVpc
      ? ec2.Vpc.fromVpcAttributes(this, 'ExistingVpc', {
          vpcId: props.existingVpc.vpcId,
          availabilityZones: props.existingVpc.availabilityZones,
          privateSubnetIds: props.existingVpc.privateSubnetIds,
          vpcCidrBlock: props.existingVpc.vpcCidrBlock,
        })
      : undefined;
    this.compute = new TrainingCompute(this, 'Training', {
      dataBucket,
      vpc,
      gpuInstanceTypes: props.gpuInstanceTypes,
      maxvCpus: props.maxvCpus,
      runnableTimeout,
      jobTimeout,
      image: props.trainingImage,
    });

    this.pipeline = new Pipeline(this, 'Pipeline', {
      dataBucket,
      modelBucket,
      key,
      jobQueue: this.compute.jobQueue,
      jobDefinition: this.compute.jobDefinition,
      codeVersion: props.codeVersion,
    });
    this.inference = new InferenceApi(this, 'Inference', {
      modelBucket,
      key,
      auth: props.apiAuth,
      endpointType: props.apiEndpointType,
      vpc: this.compute.vpc,
      vpcSubnets: this.compute.vpcSubnets,
      allowedCidrs: props.apiAllowedCidrs,
    });

    // Least privilege, by prefix (functions/core/layout.ts): what each step reads and writes.
    const p = this.pipeline;
    const s = this.storage;
    // Preprocess removes its partial output when it fails; training prunes old checkpoints.
    s.grantObjects(p.preprocessFunction.role!, dataBucket, { read: ['datasets/'], write: ['prepared/'], delete: ['prepared/'], list: ['datasets/', 'prepared/'] });
    s.grantObjects(this.compute.jobRole, dataBucket, { read: ['prepared/', 'runs/'], write: ['runs/'], delete: ['runs/*/checkpoints/'], list: ['runs/'] });
    s.grantObjects(p.exportFunction.role!, dataBucket, { read: ['prepared/', 'runs/'], write: ['runs/'], list: ['runs/'] });
    s.grantObjects(p.evaluateFunction.role!, dataBucket, { read: ['prepared/', 'runs/'], write: ['runs/'], list: ['runs/'] });
    s.grantObjects(p.evaluateFunction.role!, modelBucket, { read: ['models/'], list: ['models/'] });
    // The champion may be re-scored on the challenger's test split.
    s.grantModelDecrypt(p.evaluateFunction.role!);
    s.grantObjects(p.registerFunction.role!, dataBucket, { read: ['prepared/', 'runs/'], write: ['runs/'], list: ['runs/'] });
    s.grantObjects(p.registerFunction.role!, modelBucket, { read: ['models/'], write: ['models/'], list: ['models/'] });
    s.grantModelEncrypt(p.registerFunction.role!);
    s.grantObjects(p.recordFailureFunction.role!, dataBucket, { write: ['runs/'] });
    s.grantObjects(this.inference.function.role!, modelBucket, { read: ['models/'], list: ['models/'] });
    s.grantModelDecrypt(this.inference.function.role!);

    new CfnOutput(this, 'DataBucketName', { value: dataBucket.bucketName, description: 'Upload datasets to s3://<this>/datasets/<name>/' });
    new CfnOutput(this, 'ModelBucketName', { value: modelBucket.bucketName });
    new CfnOutput(this, 'KeyArn', { value: key.keyArn });
    new CfnOutput(this, 'StateMachineArn', { value: p.stateMachine.stateMachineArn });
    new CfnOutput(this, 'ApiUrl', { value: this.inference.api.url });
    if (this.inference.apiKey) new CfnOutput(this, 'ApiKeyId', { value: this.inference.apiKey.keyId });
  }
}
