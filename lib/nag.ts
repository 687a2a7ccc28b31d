import { CfnElement, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import type { DlopsStack } from './dlops-stack';
import { DlopsFunction } from './dlops-function';

function ack(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** cdk-nag's rendering of a resource's ARN in a finding id, e.g. `<StorageData6BB23F4E.Arn>`. */
function arnOf(scope: IConstruct): string {
  const element = (scope.node.defaultChild ?? scope) as CfnElement;
  return `<${Stack.of(scope).getLogicalId(element)}.Arn>`;
}

function policyOf(role: iam.IRole): IConstruct {
  const policy = role.node.tryFindChild('DefaultPolicy');
  if (!policy) throw new Error(`Role ${role.node.path} has no DefaultPolicy to acknowledge findings on.`);
  return policy;
}

const XRAY_REASON =
  'X-Ray PutTraceSegments/PutTelemetryRecords do not support resource-level permissions (https://docs.aws.amazon.com/xray/latest/devguide/security_iam_service-with-iam.html); added by active tracing.';
const PREFIX_REASON =
  'Object access is scoped to the key prefix this role owns (functions/core/layout.ts); the keys below it are per run or per model version and unknown at deploy.';

/**
 * Every cdk-nag AwsSolutions acknowledgement of dlops, each on the resource it concerns with
 * its reason. Anything not listed here fails `cdk synth`.
 */
export function acknowledgeNagFindings(stack: DlopsStack): void {
  const { storage, compute, pipeline, inference } = stack;
  const data = arnOf(storage.dataBucket);
  const models = arnOf(storage.modelBucket);

  // Function roles: X-Ray wildcards and prefix-scoped object ARNs.
  const prefixes: Array<[DlopsFunction | undefined, string[]]> = [
    [pipeline.preprocessFunction, [`${data}/datasets/*`, `${data}/prepared/*`]],
    [pipeline.exportFunction, [`${data}/prepared/*`, `${data}/runs/*`]],
    [pipeline.evaluateFunction, [`${data}/prepared/*`, `${data}/runs/*`, `${models}/models/*`]],
    [pipeline.registerFunction, [`${data}/prepared/*`, `${data}/runs/*`, `${models}/models/*`]],
    [pipeline.recordFailureFunction, [`${data}/runs/*`]],
    [pipeline.triggerFunction, []],
    [inference.function, [`${models}/models/*`]],
  ];
  for (const [fn, resources] of prefixes) {
    const policy = policyOf(fn!.role!);
    ack(policy, 'AwsSolutions-IAM5[Resource::*]', XRAY_REASON);
    for (const r of resources) ack(policy, `AwsSolutions-IAM5[Resource::${r}]`, PREFIX_REASON);
  }
  const jobPolicy = policyOf(compute.jobRole);
  for (const r of [`${data}/prepared/*`, `${data}/runs/*`, `${data}/runs/*/checkpoints/*`]) ack(jobPolicy, `AwsSolutions-IAM5[Resource::${r}]`, PREFIX_REASON);

  for (const fn of stack.node.findAll().filter((c): c is DlopsFunction => c instanceof DlopsFunction)) {
    ack(
      fn,
      'AwsSolutions-L1',
      'nodejs22.x is pinned on purpose: it is the runtime the code and the bundled onnxruntime-node binary are tested against (the team moves runtimes deliberately, not on each release).',
    );
  }

  // Pulling the image from the CDK assets repository: ecr:GetAuthorizationToken has no resource-level permissions.
  const executionPolicy = compute.jobDefinition.container.executionRole.node.tryFindChild('DefaultPolicy');
  if (executionPolicy) {
    ack(
      executionPolicy,
      'AwsSolutions-IAM5[Resource::*]',
      'ecr:GetAuthorizationToken accepts only "*" (https://docs.aws.amazon.com/AmazonECR/latest/userguide/security_iam_id-based-policy-examples.html); image pulls themselves are scoped to the assets repository.',
    );
  }

  // The state machine role, as aws-stepfunctions(-tasks) writes it.
  const smPolicy = policyOf(pipeline.stateMachine.role);
  ack(
    smPolicy,
    'AwsSolutions-IAM5[Resource::*]',
    'CloudWatch Logs vended-log delivery (logs:*LogDelivery, PutResourcePolicy, Describe*) and X-Ray accept only "*" (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html#cloudwatch-iam-policy).',
  );
  for (const fn of [pipeline.preprocessFunction, pipeline.exportFunction, pipeline.evaluateFunction, pipeline.registerFunction, pipeline.recordFailureFunction]) {
    ack(smPolicy, `AwsSolutions-IAM5[Resource::${arnOf(fn)}:*]`, 'lambda:InvokeFunction on this one function and its versions/aliases (LambdaInvoke grant).');
  }
  ack(
    smPolicy,
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job-definition/*]',
    'BatchSubmitJob grants SubmitJob on job-definition revisions: each deploy registers a new revision number.',
  );

  // Batch container instances.
  for (const env of [compute.spotEnvironment, compute.onDemandEnvironment]) {
    const role = env.node.tryFindChild('InstanceProfileRole');
    if (role) {
      ack(
        role,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]',
        'The ECS container-instance policy AWS Batch documents for its EC2 compute environments (register with ECS, pull from ECR, write awslogs).',
      );
    }
  }

  // Interface endpoint security groups: 443 from the VPC's CIDR, a Fn::GetAtt the rule cannot evaluate.
  for (const endpoint of compute.vpc.node.children.filter((c): c is ec2.InterfaceVpcEndpoint => c instanceof ec2.InterfaceVpcEndpoint)) {
    const sg = endpoint.node.tryFindChild('SecurityGroup');
    if (sg) ack(sg, 'AwsSolutions-EC23', 'Inbound HTTPS only from the VPC CIDR (Fn::GetAtt Vpc.CidrBlock), for the training instances to reach the AWS API.');
  }

  // CDK's singleton that turns on EventBridge notifications for the data bucket at deploy.
  for (const child of stack.node.children.filter((c) => c.node.id.startsWith('BucketNotificationsHandler'))) {
    const role = child.node.tryFindChild('Role');
    if (role) {
      ack(
        role,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        'aws-s3 BucketNotificationsHandler (custom resource enabling EventBridge delivery on the data bucket); its role and policy are fixed by CDK and it only writes its logs.',
      );
    }
  }

  ack(pipeline.triggerDeadLetterQueue, 'AwsSolutions-SQS3', 'This queue is itself the dead-letter queue of the trigger rule target.');

  // The inference API.
  const api = inference.api;
  const cloudWatchRole = api.node.tryFindChild('CloudWatchRole');
  if (cloudWatchRole) {
    ack(
      cloudWatchRole,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      'The account-level role API Gateway needs to write execution logs; AWS documents this managed policy for it.',
    );
  }
  ack(
    api.deploymentStage,
    'AwsSolutions-APIG3',
    'Callers are authenticated (SigV4 or API key) and throttled per stage/usage plan; a WAF web ACL is an account-level choice the operator can associate (not possible at all for a private API).',
  );
  for (const method of api.methods) {
    const iamAuth = method.node.defaultChild && (method.node.defaultChild as apigw.CfnMethod).authorizationType === apigw.AuthorizationType.IAM;
    ack(method, 'AwsSolutions-COG4', iamAuth ? 'Authorized with IAM (SigV4): callers are AWS principals, not Cognito users.' : 'API-key mode chosen by context apiAuth=apiKey: callers are services holding a usage-plan key, not Cognito users.');
    if (!iamAuth) ack(method, 'AwsSolutions-APIG4', 'API-key mode chosen by context apiAuth=apiKey: every method requires a usage-plan key (apiKeyRequired).');
  }
}
