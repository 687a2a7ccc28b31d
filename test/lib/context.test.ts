import { RemovalPolicy } from 'aws-cdk-lib';
import { stackPropsFromContext } from '../../lib/context';

const reader = (context: Record<string, unknown>) => (key: string) => context[key];

describe('stackPropsFromContext', () => {
  test('no context: every prop left to its construct default', () => {
    const props = stackPropsFromContext(reader({}));
    expect(Object.values(props).filter((v) => v !== undefined)).toEqual([]);
  });

  test('strings from -c are parsed: lists, numbers, enums', () => {
    const props = stackPropsFromContext(
      reader({ gpuInstanceTypes: 'g5.xlarge, g6.xlarge', maxvCpus: '32', runnableTimeoutMinutes: 60, apiEndpointType: 'private', apiAuth: 'apiKey', removalPolicy: 'destroy' }),
    );
    expect(props).toMatchObject({ gpuInstanceTypes: ['g5.xlarge', 'g6.xlarge'], maxvCpus: 32, runnableTimeoutMinutes: 60, apiEndpointType: 'private', apiAuth: 'apiKey', removalPolicy: RemovalPolicy.DESTROY });
  });

  test('vpcId with its subnets, zones and CIDR describes an existing VPC without a look-up', () => {
    const props = stackPropsFromContext(
      reader({ vpcId: 'vpc-0abc', vpcSubnetIds: 'subnet-1,subnet-2', vpcAvailabilityZones: ['eu-west-1a', 'eu-west-1b'], vpcCidr: '10.0.0.0/16' }),
    );
    expect(props.existingVpc).toEqual({ vpcId: 'vpc-0abc', privateSubnetIds: ['subnet-1', 'subnet-2'], availabilityZones: ['eu-west-1a', 'eu-west-1b'], vpcCidrBlock: '10.0.0.0/16' });
  });

  test('vpcId alone throws, naming what is missing', () => {
    expect(() => stackPropsFromContext(reader({ vpcId: 'vpc-0abc' }))).toThrow(/Context vpcId needs vpcSubnetIds, vpcAvailabilityZones and vpcCidr as well/);
  });

  test('subnets and zones of different counts throw', () => {
    expect(() => stackPropsFromContext(reader({ vpcId: 'v', vpcSubnetIds: 's1', vpcAvailabilityZones: 'a,b', vpcCidr: '10.0.0.0/16' }))).toThrow(
      /vpcSubnetIds must list one subnet per availability zone \(2\). Received 1./,
    );
  });

  test('a non-integer number throws', () => {
    expect(() => stackPropsFromContext(reader({ maxvCpus: 'lots' }))).toThrow(/Context maxvCpus must be a whole number. Received "lots"./);
  });

  test('an unknown removalPolicy throws', () => {
    expect(() => stackPropsFromContext(reader({ removalPolicy: 'snapshot' }))).toThrow(/Context removalPolicy must be 'retain' or 'destroy'. Received "snapshot"./);
  });
});
