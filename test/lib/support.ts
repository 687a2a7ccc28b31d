import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { Template } from 'aws-cdk-lib/assertions';
import { DlopsStack, type DlopsStackProps } from '../../lib/dlops-stack';

export type CfnResource = { Type: string; Properties?: Record<string, any>; [k: string]: unknown };
export type CfnTemplate = { Resources: Record<string, CfnResource> };

/** cdk.json's context (feature flags included), so tests synthesize what `cdk synth` does. */
export const CDK_CONTEXT = (JSON.parse(readFileSync(join(__dirname, '../../cdk.json'), 'utf8')) as { context: Record<string, unknown> }).context;

/** App context that skips esbuild bundling: template tests need the template, not the bundles. */
export const NO_BUNDLING = { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] as string[] };

/** A prebuilt image, so template tests do not depend on functions/train/Dockerfile. */
export const TEST_IMAGE = 'public.ecr.aws/docker/library/node:22';

/** One DlopsStack synthesized without bundling; build it once per test file (beforeAll). */
export function buildStack(props: DlopsStackProps = {}, context: Record<string, unknown> = {}): { app: App; stack: DlopsStack; template: Template } {
  const app = new App({ context: { ...NO_BUNDLING, ...context } });
  const stack = new DlopsStack(app, 'Test', { trainingImage: ecs.ContainerImage.fromRegistry(TEST_IMAGE), ...props });
  return { app, stack, template: Template.fromStack(stack) };
}

const PLACEHOLDER_ARN: Record<string, (id: string) => string> = {
  'AWS::Lambda::Function': (id) => `arn:aws:lambda:us-east-1:123456789012:function:${id}`,
  'AWS::Batch::JobQueue': (id) => `arn:aws:batch:us-east-1:123456789012:job-queue/${id}`,
  'AWS::Batch::JobDefinition': (id) => `arn:aws:batch:us-east-1:123456789012:job-definition/${id}:1`,
  'AWS::S3::Bucket': (id) => `arn:aws:s3:::${id.toLowerCase()}`,
};
const PSEUDO: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::Region': 'us-east-1', 'AWS::AccountId': '123456789012', 'AWS::URLSuffix': 'amazonaws.com' };

/** Replaces one intrinsic (Ref / Fn::GetAtt) with a placeholder string. */
function placeholder(template: CfnTemplate, token: unknown): string {
  const t = token as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
  const id = t.Ref ?? t['Fn::GetAtt']?.[0];
  if (id === undefined) throw new Error(`Unexpected token in the definition: ${JSON.stringify(token)}`);
  if (PSEUDO[id]) return PSEUDO[id];
  const type = template.Resources[id]?.Type;
  const make = type ? PLACEHOLDER_ARN[type] : undefined;
  if (!make) throw new Error(`No placeholder for ${id} (${type}) in ${JSON.stringify(token)}`);
  return make(id);
}

/** The state machine definition with every token resolved to a placeholder, parsed. */
export function definitionOf(template: CfnTemplate): { definition: any; logicalIds: Record<string, string> } {
  const machines = Object.values(template.Resources).filter((r) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) throw new Error(`Expected one state machine, found ${machines.length}.`);
  const raw = machines[0].Properties!.DefinitionString as string | { 'Fn::Join': [string, unknown[]] };
  const text = typeof raw === 'string' ? raw : raw['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : placeholder(template, p))).join(raw['Fn::Join'][0]);
  const logicalIds: Record<string, string> = {};
  for (const [id, r] of Object.entries(template.Resources)) if (r.Type === 'AWS::Lambda::Function') logicalIds[id] = PLACEHOLDER_ARN[r.Type](id);
  return { definition: JSON.parse(text), logicalIds };
}

/** All statements of the IAM policies attached to a role (by the role's logical id). */
export function statementsOfRole(template: CfnTemplate, roleLogicalId: string): any[] {
  return Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy' && (r.Properties!.Roles as Array<{ Ref: string }>).some((x) => x.Ref === roleLogicalId))
    .flatMap((r) => r.Properties!.PolicyDocument.Statement as any[]);
}

export function actionsOf(statement: { Action: string | string[] }): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/** The logical id of the role a construct's function runs as. */
export function roleIdOfFunction(template: CfnTemplate, functionLogicalId: string): string {
  const role = template.Resources[functionLogicalId].Properties!.Role as { 'Fn::GetAtt': [string, string] };
  return role['Fn::GetAtt'][0];
}
