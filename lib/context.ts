import { RemovalPolicy } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { DlopsStackProps } from './dlops-stack';

/** Reads one context value (`cdk -c key=value` or cdk.json). */
export type ContextReader = (key: string) => unknown;

function list(value: unknown, name: string): string[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  throw new Error(`Context ${name} must be a comma-separated string or a list. Received ${JSON.stringify(value)}.`);
}

function int(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n)) throw new Error(`Context ${name} must be a whole number. Received ${JSON.stringify(value)}.`);
  return n;
}

function str(value: unknown): string | undefined {
  return value === undefined || value === null || value === '' ? undefined : String(value);
}

/**
 * The stack's props from CDK context. With `vpcId` the VPC is described by context
 * (`vpcSubnetIds`, `vpcAvailabilityZones`, `vpcCidr`) instead of looked up, so synth needs no credentials.
 */
export function stackPropsFromContext(get: ContextReader): DlopsStackProps {
  const vpcId = str(get('vpcId'));
  let existingVpc: DlopsStackProps['existingVpc'];
  if (vpcId !== undefined) {
    const privateSubnetIds = list(get('vpcSubnetIds'), 'vpcSubnetIds');
    const availabilityZones = list(get('vpcAvailabilityZones'), 'vpcAvailabilityZones');
    const vpcCidrBlock = str(get('vpcCidr'));
    if (!privateSubnetIds?.length || !availabilityZones?.length || vpcCidrBlock === undefined) {
      throw new Error(
        `Context vpcId needs vpcSubnetIds, vpcAvailabilityZones and vpcCidr as well (no look-up at synth). Received vpcSubnetIds=${JSON.stringify(get('vpcSubnetIds'))}, vpcAvailabilityZones=${JSON.stringify(get('vpcAvailabilityZones'))}, vpcCidr=${JSON.stringify(get('vpcCidr'))}.`,
      );
    }
    if (privateSubnetIds.length !== availabilityZones.length) {
      throw new Error(`Context vpcSubnetIds must list one subnet per availability zone (${availabilityZones.length}). Received ${privateSubnetIds.length}.`);
    }
    existingVpc = { vpcId, privateSubnetIds, availabilityZones, vpcCidrBlock };
  }
  const apiEndpointType = str(get('apiEndpointType'));
  const apiAuth = str(get('apiAuth'));
  const removal = str(get('removalPolicy'));
  if (removal !== undefined && removal !== 'retain' && removal !== 'destroy') {
    throw new Error(`Context removalPolicy must be 'retain' or 'destroy'. Received ${JSON.stringify(removal)}.`);
  }
  return {
    existingVpc,
    gpuInstanceTypes: list(get('gpuInstanceTypes'), 'gpuInstanceTypes'),
    maxvCpus: int(get('maxvCpus'), 'maxvCpus'),
    runnableTimeoutMinutes: int(get('runnableTimeoutMinutes'), 'runnableTimeoutMinutes'),
    jobTimeoutMinutes: int(get('jobTimeoutMinutes'), 'jobTimeoutMinutes'),
    apiEndpointType: apiEndpointType as DlopsStackProps['apiEndpointType'],
    apiAuth: apiAuth as DlopsStackProps['apiAuth'],
    apiAllowedCidrs: list(get('apiAllowedCidrs'), 'apiAllowedCidrs'),
    codeVersion: str(get('codeVersion')),
    // A prebuilt image (e.g. pushed by CI) instead of building functions/train/Dockerfile at deploy.
    trainingImage: str(get('trainingImageUri')) === undefined ? undefined : ecs.ContainerImage.fromRegistry(str(get('trainingImageUri'))!),
    removalPolicy: removal === 'destroy' ? RemovalPolicy.DESTROY : removal === 'retain' ? RemovalPolicy.RETAIN : undefined,
  };
}
