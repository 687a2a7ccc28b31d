import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { PROJECT_ROOT } from '../../lib/dlops-function';
import { TRAIN_DOCKERFILE } from '../../lib/training-compute';
import { createApp } from '../../lib/app';
import { NO_BUNDLING, TEST_IMAGE } from '../lib/support';

/**
 * The app as `cdk synth` builds it, with cdk-nag's AwsSolutions pack as a validation plugin.
 * Bundling is skipped (the template is the same) and a prebuilt training image is used so the
 * test neither runs esbuild nor stages the Docker context; the real CLI run is in the README.
 */
function synth(context: Record<string, unknown>) {
  const { app, stack } = createApp({ context: { ...NO_BUNDLING, trainingImageUri: TEST_IMAGE, ...context } });
  return { app, stack, synth: () => app.synth() };
}

test('default app (new private VPC, regional IAM API) synthesizes with no unacknowledged cdk-nag finding', () => {
  const { synth: run } = synth({});
  expect(() => run()).not.toThrow();
});

test('private API with API keys in an existing VPC synthesizes with no unacknowledged cdk-nag finding', () => {
  const { stack, synth: run } = synth({
    apiEndpointType: 'private',
    apiAuth: 'apiKey',
    vpcId: 'vpc-0123456789abcdef0',
    vpcSubnetIds: 'subnet-0123456789abcdef0,subnet-0123456789abcdef1',
    vpcAvailabilityZones: 'us-east-1a,us-east-1b',
    vpcCidr: '10.42.0.0/16',
  });
  expect(() => run()).not.toThrow();
  const t = Template.fromStack(stack);
  t.resourceCountIs('AWS::EC2::VPC', 0);
  t.hasResourceProperties('AWS::ApiGateway::RestApi', { EndpointConfiguration: { Types: ['PRIVATE'], VpcEndpointIds: [{ Ref: stack.getLogicalId(stack.inference.endpoint!.node.defaultChild as never) }] } });
});

(existsSync(join(PROJECT_ROOT, TRAIN_DOCKERFILE)) ? test : test.skip)('with the training image built from functions/train/Dockerfile (the default), synth passes cdk-nag too', () => {
  const { app } = createApp({ context: NO_BUNDLING });
  expect(() => app.synth()).not.toThrow();
});

test('an unacknowledged finding fails synth (the gate works)', () => {
  const { stack, synth: run } = synth({});
  // A role with a managed policy and no acknowledgement: AwsSolutions-IAM4.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const iam = require('aws-cdk-lib/aws-iam') as typeof import('aws-cdk-lib/aws-iam');
  new iam.Role(stack, 'Unreviewed', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AdministratorAccess')],
  });
  const errors = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  let thrown: unknown;
  let printed = '';
  try {
    run();
  } catch (error) {
    thrown = error;
  } finally {
    printed = errors.mock.calls.flat().join('\n');
    errors.mockRestore();
  }
  expect(thrown).toBeInstanceOf(Error);
  // The report goes to the message or to stderr depending on the terminal: check both.
  const report = `${(thrown as Error).message}\n${printed}`;
  expect(report).toMatch(/AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy\/AdministratorAccess\]/);
  expect(report).toContain('Unreviewed');
});
