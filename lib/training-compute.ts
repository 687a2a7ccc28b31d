import { Duration, IgnoreMode, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ENV } from '../functions/core/env';
import { PROJECT_ROOT } from './dlops-function';

/** Default GPU instance types: NVIDIA A10G (g5) and L4 (g6), one GPU each, small to large. */
export const DEFAULT_GPU_INSTANCE_TYPES = ['g5.xlarge', 'g5.2xlarge', 'g6.xlarge', 'g6.2xlarge'];

/**
 * The Docker build context is the repository root; only what functions/train/Dockerfile copies
 * goes into the asset (the same allow-list as functions/train/Dockerfile.dockerignore), so the
 * image hash changes only when training code or dependencies do, and node_modules, cdk.out,
 * .dlops, .git, test and bench never reach the build.
 */
export const TRAIN_IMAGE_EXCLUDES = ['*', '!package.json', '!package-lock.json', '!.npmrc', '!tsconfig.json', '!functions', 'functions/**/*.test.ts'];
export const TRAIN_DOCKERFILE = 'functions/train/Dockerfile';

export interface TrainingComputeProps {
  /** The bucket the job reads prepared data from and writes runs to; the job gets its name as DATA_BUCKET. */
  readonly dataBucket: s3.IBucket;
  /**
   * The VPC the GPU instances run in.
   * @default - a new VPC with isolated subnets only (no NAT, no internet gateway) and VPC endpoints for S3, ECR, ECS, CloudWatch Logs, KMS and STS
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets of `vpc` for the instances.
   * @default - the VPC's isolated subnets for a new VPC; its private subnets for an imported one
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * Create the VPC endpoints the job needs in `vpc`.
   * @default - true for a new VPC; false for an imported VPC (which is expected to reach AWS through its own endpoints or network)
   */
  readonly createEndpoints?: boolean;
  /**
   * Availability zones of the new VPC (ignored with `vpc`).
   * @default 2
   */
  readonly maxAzs?: number;
  /**
   * EC2 instance types of both compute environments. Must be x86_64 GPU types (g* or p* families, no Graviton).
   * @default DEFAULT_GPU_INSTANCE_TYPES (g5 and g6 families)
   */
  readonly gpuInstanceTypes?: string[];
  /**
   * Upper bound of vCPUs of each compute environment: caps spend and parallel runs.
   * @default 64
   */
  readonly maxvCpus?: number;
  /**
   * How long a job may wait RUNNABLE (no GPU capacity, or no instance type fits) before the queue cancels it.
   * @default Duration.hours(4)
   */
  readonly runnableTimeout?: Duration;
  /**
   * How long one attempt of the training job may run before Batch stops it.
   * @default Duration.hours(8)
   */
  readonly jobTimeout?: Duration;
  /**
   * Attempts of the job in total; retries happen only after Spot reclaims (status reason `Host EC2*`).
   * @default 3
   */
  readonly retryAttempts?: number;
  /**
   * vCPUs and memory the job container reserves; the defaults fit one xlarge GPU instance.
   * @default 4 vCPUs and 15,000 MiB
   */
  readonly jobVcpus?: number;
  /** @default Size.mebibytes(15_000) - leaves room for the ECS agent on a 16 GiB instance */
  readonly jobMemory?: Size;
  /**
   * The training container image.
   * @default - built at deploy from functions/train/Dockerfile with the repository root as context
   */
  readonly image?: ecs.ContainerImage;
  /**
   * Days the training job's logs and the VPC flow logs are kept.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

const GPU_TYPE = /^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\.[a-z0-9]+$/;

/**
 * GPU training on AWS Batch in private subnets: a Spot compute environment ahead of an
 * On-Demand one in one job queue, and the job definition of the training container.
 */
export class TrainingCompute extends Construct {
  public readonly vpc: ec2.IVpc;
  public readonly vpcSubnets: ec2.SubnetSelection;
  public readonly securityGroup: ec2.SecurityGroup;
  public readonly spotEnvironment: batch.ManagedEc2EcsComputeEnvironment;
  public readonly onDemandEnvironment: batch.ManagedEc2EcsComputeEnvironment;
  public readonly jobQueue: batch.JobQueue;
  public readonly jobDefinition: batch.EcsJobDefinition;
  /** The role the training container runs as: grant it data access. */
  public readonly jobRole: iam.Role;
  public readonly jobTimeout: Duration;
  public readonly runnableTimeout: Duration;
  public readonly retryAttempts: number;

  constructor(scope: Construct, id: string, props: TrainingComputeProps) {
    super(scope, id);
    const gpuInstanceTypes = props.gpuInstanceTypes ?? DEFAULT_GPU_INSTANCE_TYPES;
    const maxvCpus = props.maxvCpus ?? 64;
    const maxAzs = props.maxAzs ?? 2;
    this.runnableTimeout = props.runnableTimeout ?? Duration.hours(4);
    this.jobTimeout = props.jobTimeout ?? Duration.hours(8);
    this.retryAttempts = props.retryAttempts ?? 3;
    const jobVcpus = props.jobVcpus ?? 4;
    const jobMemory = props.jobMemory ?? Size.mebibytes(15_000);
    const logRetention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;
    const createEndpoints = props.createEndpoints ?? props.vpc === undefined;

    if (gpuInstanceTypes.length === 0) throw new Error('gpuInstanceTypes must name at least one instance type. Received [].');
    for (const type of gpuInstanceTypes) {
      if (!GPU_TYPE.test(type)) {
        throw new Error(`gpuInstanceTypes must be x86_64 NVIDIA GPU instance types (g4dn, g5, g6, g6e, gr6, p3, p4d, p5 families). Received ${type}.`);
      }
    }
    if (!Number.isInteger(maxvCpus) || maxvCpus < 1 || maxvCpus > 10_000) {
      throw new Error(`maxvCpus must be between 1 and 10,000. Received ${maxvCpus}.`);
    }
    if (!Number.isInteger(maxAzs) || maxAzs < 1 || maxAzs > 6) throw new Error(`maxAzs must be between 1 and 6. Received ${maxAzs}.`);
    // Batch accepts a job state time limit of 10 minutes to 24 hours.
    // https://docs.aws.amazon.com/batch/latest/APIReference/API_JobStateTimeLimitAction.html
    const runnableSeconds = this.runnableTimeout.toSeconds();
    if (runnableSeconds < 600 || runnableSeconds > 86_400) {
      throw new Error(`runnableTimeout must be between 10 and 1,440 minutes. Received ${runnableSeconds / 60} minutes.`);
    }
    const jobSeconds = this.jobTimeout.toSeconds();
    if (jobSeconds < 60 || jobSeconds > 14 * 86_400) throw new Error(`jobTimeout must be between 1 minute and 14 days. Received ${jobSeconds / 60} minutes.`);
    if (!Number.isInteger(this.retryAttempts) || this.retryAttempts < 1 || this.retryAttempts > 10) {
      throw new Error(`retryAttempts must be between 1 and 10. Received ${this.retryAttempts}.`);
    }
    if (jobVcpus < 1 || jobVcpus > maxvCpus) throw new Error(`jobVcpus must be between 1 and maxvCpus (${maxvCpus}). Received ${jobVcpus}.`);

    if (props.vpc) {
      this.vpc = props.vpc;
      this.vpcSubnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    } else {
      const flowLogs = new logs.LogGroup(this, 'FlowLogs', { retention: logRetention, removalPolicy: RemovalPolicy.DESTROY });
      this.vpc = new ec2.Vpc(this, 'Vpc', {
        maxAzs,
        natGateways: 0,
        // Restricting needs a custom-resource Lambda; nothing is ever placed in the default group.
        restrictDefaultSecurityGroup: false,
        // Isolated only: no route to the internet at all, so no NAT gateway and no internet gateway.
        subnetConfiguration: [{ name: 'training', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }],
        flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL } },
      });
      this.vpcSubnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    }
    if (createEndpoints) this.addEndpoints();

    this.securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: this.vpc,
      description: 'dlops training instances: no inbound; outbound to the VPC endpoints',
      allowAllOutbound: true,
    });

    const instanceTypes = gpuInstanceTypes.map((t) => new ec2.InstanceType(t));
    const environment = (name: string, spot: boolean) =>
      new batch.ManagedEc2EcsComputeEnvironment(this, name, {
        vpc: this.vpc,
        vpcSubnets: this.vpcSubnets,
        securityGroups: [this.securityGroup],
        instanceTypes,
        useOptimalInstanceClasses: false,
        images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
        spot,
        allocationStrategy: spot ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
        minvCpus: 0,
        maxvCpus,
        updateToLatestImageVersion: true,
      });
    this.spotEnvironment = environment('Spot', true);
    this.onDemandEnvironment = environment('OnDemand', false);

    // Without these, a job waits RUNNABLE forever when no GPU capacity is to be had.
    // https://docs.aws.amazon.com/batch/latest/userguide/job_stuck_in_runnable.html
    const timeLimit = (reason: batch.JobStateTimeLimitActionsReason): batch.JobStateTimeLimitAction => ({
      action: batch.JobStateTimeLimitActionsAction.CANCEL,
      maxTime: this.runnableTimeout,
      reason,
      state: batch.JobStateTimeLimitActionsState.RUNNABLE,
    });
    this.jobQueue = new batch.JobQueue(this, 'Queue', {
      computeEnvironments: [
        { computeEnvironment: this.spotEnvironment, order: 1 },
        { computeEnvironment: this.onDemandEnvironment, order: 2 },
      ],
      jobStateTimeLimitActions: [
        timeLimit(batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY),
        timeLimit(batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE),
        timeLimit(batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT),
      ],
    });

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'dlops training container: reads prepared data, writes its run',
    });
    const jobLogs = new logs.LogGroup(this, 'JobLogs', { retention: logRetention, removalPolicy: RemovalPolicy.DESTROY });
    const image =
      props.image ??
      ecs.ContainerImage.fromAsset(PROJECT_ROOT, {
        file: TRAIN_DOCKERFILE,
        exclude: TRAIN_IMAGE_EXCLUDES,
        ignoreMode: IgnoreMode.DOCKER,
        platform: Platform.LINUX_AMD64,
      });

    this.jobDefinition = new batch.EcsJobDefinition(this, 'JobDefinition', {
      container: new batch.EcsEc2ContainerDefinition(this, 'Container', {
        image,
        gpu: 1,
        cpu: jobVcpus,
        memory: jobMemory,
        jobRole: this.jobRole,
        environment: {
          [ENV.dataBucket]: props.dataBucket.bucketName,
          // The SDK in the container does not read the region from instance metadata.
          AWS_REGION: Stack.of(this).region,
        },
        logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'train', logGroup: jobLogs }),
      }),
      timeout: this.jobTimeout,
      retryAttempts: this.retryAttempts,
      // First match wins: retry a Spot reclaim (training resumes from its last checkpoint), exit on anything else.
      // https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html
      retryStrategies: [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
    });
  }

  private addEndpoints(): void {
    this.vpc.addGatewayEndpoint('S3Endpoint', { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [this.vpcSubnets] });
    // ECR api + dkr pull the image (its layers come through the S3 gateway); ECS, ECS agent and
    // telemetry let the Batch instances join their cluster; Logs for the awslogs driver; KMS for
    // SSE-KMS objects; STS for the job role's credentials.
    const services: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
      EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
      EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      Ecs: ec2.InterfaceVpcEndpointAwsService.ECS,
      EcsAgent: ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
      EcsTelemetry: ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
      Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
      Kms: ec2.InterfaceVpcEndpointAwsService.KMS,
      Sts: ec2.InterfaceVpcEndpointAwsService.STS,
    };
    for (const [name, service] of Object.entries(services)) {
      this.vpc.addInterfaceEndpoint(`${name}Endpoint`, { service, subnets: this.vpcSubnets, privateDnsEnabled: true });
    }
  }
}
