import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { PROJECT_ROOT } from '../../lib/dlops-function';
import { DEFAULT_GPU_INSTANCE_TYPES, TRAIN_DOCKERFILE, TrainingCompute, type TrainingComputeProps } from '../../lib/training-compute';
import { NO_BUNDLING, TEST_IMAGE, type CfnTemplate } from './support';

function build(props: Partial<TrainingComputeProps> = {}) {
  const stack = new Stack(new App({ context: NO_BUNDLING }), 'T', { env: { account: '123456789012', region: 'us-east-1' } });
  const dataBucket = s3.Bucket.fromBucketName(stack, 'Data', 'dlops-data');
  const compute = new TrainingCompute(stack, 'Training', { dataBucket, image: ecs.ContainerImage.fromRegistry(TEST_IMAGE), ...props });
  return { stack, compute, template: Template.fromStack(stack) };
}

let built: ReturnType<typeof build>;
let json: CfnTemplate;
beforeAll(() => {
  built = build();
  json = built.template.toJSON() as CfnTemplate;
});

describe('default VPC', () => {
  test('has no NAT gateway, no internet gateway and only isolated subnets', () => {
    built.template.resourceCountIs('AWS::EC2::NatGateway', 0);
    built.template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    built.template.resourceCountIs('AWS::EC2::VPCGatewayAttachment', 0);
    const subnets = Object.values(json.Resources).filter((r) => r.Type === 'AWS::EC2::Subnet');
    expect(subnets).toHaveLength(2);
    for (const s of subnets) expect(s.Properties!.MapPublicIpOnLaunch).toBe(false);
    const routes = Object.values(json.Resources).filter((r) => r.Type === 'AWS::EC2::Route');
    expect(routes).toHaveLength(0);
  });

  test('has the S3 gateway endpoint and ECR api/dkr, ECS, Logs, KMS and STS interface endpoints with private DNS', () => {
    built.template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['.s3'])]) }) });
    const interfaces = Object.values(json.Resources)
      .filter((r) => r.Type === 'AWS::EC2::VPCEndpoint' && r.Properties!.VpcEndpointType === 'Interface')
      .map((r) => r.Properties!.ServiceName as string);
    for (const r of Object.values(json.Resources).filter((x) => x.Type === 'AWS::EC2::VPCEndpoint' && x.Properties!.VpcEndpointType === 'Interface')) {
      expect(r.Properties!.PrivateDnsEnabled).toBe(true);
    }
    expect(interfaces.sort()).toEqual(
      ['ecr.api', 'ecr.dkr', 'ecs', 'ecs-agent', 'ecs-telemetry', 'logs', 'kms', 'sts'].map((s) => `com.amazonaws.us-east-1.${s}`).sort(),
    );
  });

  test('has flow logs', () => {
    built.template.resourceCountIs('AWS::EC2::FlowLog', 1);
  });
});

describe('Batch', () => {
  test('two managed EC2 environments on the GPU types, NVIDIA AMI, no optimal classes; one Spot, one On-Demand', () => {
    const envs = Object.values(json.Resources).filter((r) => r.Type === 'AWS::Batch::ComputeEnvironment');
    expect(envs).toHaveLength(2);
    for (const e of envs) {
      const cr = e.Properties!.ComputeResources;
      expect(cr.InstanceTypes.sort()).toEqual([...DEFAULT_GPU_INSTANCE_TYPES].sort());
      expect(cr.Ec2Configuration).toEqual([{ ImageType: 'ECS_AL2023_NVIDIA' }]);
      expect(cr.MaxvCpus).toBe(64);
      expect(cr.MinvCpus).toBe(0);
    }
    expect(envs.map((e) => e.Properties!.ComputeResources.Type).sort()).toEqual(['EC2', 'SPOT']);
  });

  test('the job queue puts Spot first, On-Demand second', () => {
    const queue = json.Resources[built.stack.getLogicalId(built.compute.jobQueue.node.defaultChild as never)].Properties!;
    const order = [...queue.ComputeEnvironmentOrder].sort((a: any, b: any) => a.Order - b.Order);
    expect(order[0].ComputeEnvironment).toEqual({ 'Fn::GetAtt': [built.stack.getLogicalId(built.compute.spotEnvironment.node.defaultChild as never), 'ComputeEnvironmentArn'] });
    expect(order[1].ComputeEnvironment).toEqual({ 'Fn::GetAtt': [built.stack.getLogicalId(built.compute.onDemandEnvironment.node.defaultChild as never), 'ComputeEnvironmentArn'] });
  });

  test('the job queue cancels a job RUNNABLE past the limit for every capacity/misconfiguration reason', () => {
    const queue = Object.values(json.Resources).find((r) => r.Type === 'AWS::Batch::JobQueue')!.Properties!;
    expect(queue.JobStateTimeLimitActions).toHaveLength(3);
    for (const a of queue.JobStateTimeLimitActions) expect(a).toMatchObject({ Action: 'CANCEL', State: 'RUNNABLE', MaxTimeSeconds: 4 * 3600 });
    expect(queue.JobStateTimeLimitActions.map((a: any) => a.Reason).sort()).toEqual([
      'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
      'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE',
      'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
    ]);
  });

  test('the job definition: 1 GPU, timeout, retry on Host EC2* and exit on anything else, DATA_BUCKET and region', () => {
    const jd = Object.values(json.Resources).find((r) => r.Type === 'AWS::Batch::JobDefinition')!.Properties!;
    expect(jd.Timeout).toEqual({ AttemptDurationSeconds: 8 * 3600 });
    expect(jd.RetryStrategy).toEqual({
      Attempts: 3,
      EvaluateOnExit: [
        { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
        { Action: 'EXIT', OnReason: '*' },
      ],
    });
    const container = jd.ContainerProperties;
    expect(container.ResourceRequirements).toEqual(expect.arrayContaining([{ Type: 'GPU', Value: '1' }]));
    expect(container.Environment).toEqual(expect.arrayContaining([{ Name: 'DATA_BUCKET', Value: 'dlops-data' }, { Name: 'AWS_REGION', Value: 'us-east-1' }]));
    expect(container.LogConfiguration.LogDriver).toBe('awslogs');
    expect(container.JobRoleArn).toBeDefined();
  });

  (existsSync(join(PROJECT_ROOT, TRAIN_DOCKERFILE)) ? test : test.skip)(
    'by default the image is a Docker asset of functions/train/Dockerfile, staged with only what the Dockerfile copies',
    () => {
      const outdir = mkdtempSync(join(tmpdir(), 'dlops-img-'));
      try {
        const app = new App({ outdir, context: NO_BUNDLING });
        const stack = new Stack(app, 'Img');
        new TrainingCompute(stack, 'Training', { dataBucket: s3.Bucket.fromBucketName(stack, 'D', 'dlops-data') });
        const jd = Object.values((Template.fromStack(stack).toJSON() as CfnTemplate).Resources).find((r) => r.Type === 'AWS::Batch::JobDefinition')!;
        expect(JSON.stringify(jd.Properties!.ContainerProperties.Image)).toContain('container-assets');
        app.synth();
        const assetDir = readdirSync(outdir).find((d) => d.startsWith('asset.') && existsSync(join(outdir, d, TRAIN_DOCKERFILE)));
        expect(assetDir).toBeDefined();
        const staged = join(outdir, assetDir!);
        for (const f of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'functions/train/main.ts', 'functions/core/errors.ts']) {
          expect(existsSync(join(staged, f))).toBe(true);
        }
        for (const f of ['node_modules', 'cdk.out', '.git', 'test', 'bench', 'lib', '.dlops']) expect(existsSync(join(staged, f))).toBe(false);
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    },
  );
});

describe('imported VPC', () => {
  test('uses the given subnets and creates no VPC and no endpoints', () => {
    const stack = new Stack(new App({ context: NO_BUNDLING }), 'I');
    const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['us-east-1a'], privateSubnetIds: ['subnet-0123456789abcdef0'], vpcCidrBlock: '10.1.0.0/16' });
    new TrainingCompute(stack, 'Training', { dataBucket: s3.Bucket.fromBucketName(stack, 'D', 'dlops-data'), vpc, image: ecs.ContainerImage.fromRegistry(TEST_IMAGE) });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::EC2::VPC', 0);
    t.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
    t.hasResourceProperties('AWS::Batch::ComputeEnvironment', { ComputeResources: Match.objectLike({ Subnets: ['subnet-0123456789abcdef0'] }) });
  });
});

describe('TrainingComputeProps validation', () => {
  test('maxvCpus 0 throws', () => {
    expect(() => build({ maxvCpus: 0 })).toThrow(/maxvCpus must be between 1 and 10,000. Received 0./);
  });
  test('maxvCpus above 10,000 throws', () => {
    expect(() => build({ maxvCpus: 10_001 })).toThrow(/maxvCpus must be between 1 and 10,000. Received 10001./);
  });
  test('a non-GPU instance type throws', () => {
    expect(() => build({ gpuInstanceTypes: ['g5.xlarge', 't3.large'] })).toThrow(/gpuInstanceTypes must be x86_64 NVIDIA GPU instance types .* Received t3.large./);
  });
  test('a Graviton GPU type throws (the NVIDIA AMI is x86_64)', () => {
    expect(() => build({ gpuInstanceTypes: ['g5g.xlarge'] })).toThrow(/Received g5g.xlarge./);
  });
  test('no instance types throws', () => {
    expect(() => build({ gpuInstanceTypes: [] })).toThrow(/gpuInstanceTypes must name at least one instance type. Received \[\]./);
  });
  test('runnableTimeout under 10 minutes throws', () => {
    expect(() => build({ runnableTimeout: Duration.minutes(5) })).toThrow(/runnableTimeout must be between 10 and 1,440 minutes. Received 5 minutes./);
  });
  test('runnableTimeout over a day throws', () => {
    expect(() => build({ runnableTimeout: Duration.hours(25) })).toThrow(/runnableTimeout must be between 10 and 1,440 minutes. Received 1500 minutes./);
  });
  test('jobTimeout under a minute throws', () => {
    expect(() => build({ jobTimeout: Duration.seconds(30) })).toThrow(/jobTimeout must be between 1 minute and 14 days. Received 0.5 minutes./);
  });
  test('retryAttempts 0 throws', () => {
    expect(() => build({ retryAttempts: 0 })).toThrow(/retryAttempts must be between 1 and 10. Received 0./);
  });
  test('jobVcpus above maxvCpus throws', () => {
    expect(() => build({ maxvCpus: 4, jobVcpus: 8 })).toThrow(/jobVcpus must be between 1 and maxvCpus \(4\). Received 8./);
  });
  test('maxAzs 0 throws', () => {
    expect(() => build({ maxAzs: 0 })).toThrow(/maxAzs must be between 1 and 6. Received 0./);
  });
});
