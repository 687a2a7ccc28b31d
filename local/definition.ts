/**
 * The pipeline as `cdk synth` describes it, synthesized in-process: the same stack class and
 * the same cdk.json context as the CDK CLI uses, with bundling and asset staging skipped (the
 * local runtime runs the sources, not the bundles). From the template come the state machine
 * definition, the Batch job definition and the API's routes; only resource references are
 * resolved, to local placeholders.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { ConfigError } from '../functions/core/errors';
import type { LocalJobDefinition, RetryStrategy } from './batch';
import { findStateMachine, TemplateResolver, type CfnTemplate, type LocalResources } from './template';

/** The repository root (where cdk.json and the functions live). */
export const REPO_ROOT = resolve(__dirname, '..');

export interface SynthOptions {
  /** Extra CDK context, on top of cdk.json's. */
  readonly context?: Record<string, unknown>;
}

/** Synthesizes the DlopsStack in-process and returns its template. */
export function synthesizeTemplate(options: SynthOptions = {}): CfnTemplate {
  // Loaded here, not at module top: aws-cdk-lib is large and only needed when no template is given.
  const { App } = require('aws-cdk-lib') as typeof import('aws-cdk-lib');
  const { DlopsStack } = require('../lib/dlops-stack') as typeof import('../lib/dlops-stack');
  const { stackPropsFromContext } = require('../lib/context') as typeof import('../lib/context');
  const cdkJson = join(REPO_ROOT, 'cdk.json');
  const fileContext = existsSync(cdkJson) ? ((JSON.parse(readFileSync(cdkJson, 'utf8')) as { context?: Record<string, unknown> }).context ?? {}) : {};
  const outdir = mkdtempSync(join(tmpdir(), 'dlops-synth-'));
  try {
    const app = new App({
      outdir,
      context: {
        ...fileContext,
        ...options.context,
        // No esbuild bundles and no copied Docker context: the template is the same, the assets are not needed here.
        'aws:cdk:bundling-stacks': [],
        'aws:cdk:disable-asset-staging': true,
      },
    });
    // As bin/app.ts builds it (cdk-nag aside: it checks, it does not change the template).
    const stack = new DlopsStack(app, 'Dlops', stackPropsFromContext((k: string) => app.node.tryGetContext(k)));
    const assembly = app.synth();
    return assembly.getStackByName(stack.stackName).template as CfnTemplate;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** What the template depends on: the CDK app's sources, cdk.json and the CDK version. */
function templateInputsDigest(): string {
  const hash = createHash('sha256');
  const files = [join(REPO_ROOT, 'cdk.json'), join(REPO_ROOT, 'bin', 'app.ts'), join(REPO_ROOT, 'node_modules', 'aws-cdk-lib', 'package.json')];
  const lib = join(REPO_ROOT, 'lib');
  if (existsSync(lib)) files.push(...readdirSync(lib).filter((f) => f.endsWith('.ts')).map((f) => join(lib, f)));
  for (const file of files.sort()) {
    hash.update(file);
    if (existsSync(file)) hash.update(readFileSync(file));
  }
  return hash.digest('hex');
}

/**
 * The synthesized template, reused from `cacheFile` while lib/, bin/app.ts, cdk.json and the
 * CDK version are unchanged (synthesis takes seconds; `local up` and the demo start often).
 */
export function loadTemplate(cacheFile: string): CfnTemplate {
  const digest = templateInputsDigest();
  if (existsSync(cacheFile)) {
    try {
      const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as { digest?: string; template?: CfnTemplate };
      if (cached.digest === digest && cached.template) return cached.template;
    } catch {
      // An unreadable cache is only a cache: synthesize again.
    }
  }
  const template = synthesizeTemplate();
  mkdirSync(dirname(cacheFile), { recursive: true });
  // Written aside and renamed: a process reading the cache meanwhile sees the old file or the new one, never half of one.
  const partial = `${cacheFile}.${process.pid}.tmp`;
  writeFileSync(partial, JSON.stringify({ digest, template }));
  renameSync(partial, cacheFile);
  return template;
}

/** The raw definition template: Fn::Join parts (literal strings and intrinsic objects). */
export function definitionParts(template: CfnTemplate): unknown[] {
  const { definitionString } = findStateMachine(template);
  if (typeof definitionString === 'string') return [definitionString];
  const join = (definitionString as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (!join || join[0] !== '') throw new ConfigError('The state machine DefinitionString is neither a string nor an Fn::Join with an empty separator.');
  return join[1];
}

export interface LocalPipeline {
  readonly stateMachineName: string;
  readonly definition: StateMachineDefinition;
  readonly resolver: TemplateResolver;
  /** Function logical id by resolved name/ARN, with its timeout and memory. */
  readonly functionConfig: (nameOrArn: string) => { logicalId: string; timeoutSeconds?: number; memoryMB?: number } | undefined;
  readonly jobDefinition: (arn: string) => LocalJobDefinition;
  /** The REST API's resource paths, e.g. `/v2/models/{name}/infer`. */
  readonly apiResources: string[];
}

/** Everything the local runtime takes from the template, with references resolved to `local`. */
export function localPipeline(template: CfnTemplate, local: LocalResources, runtimeEnvironment: Record<string, string>): LocalPipeline {
  const resolver = new TemplateResolver(template, local);
  const { name } = findStateMachine(template);
  const definitionText = (resolver.resolve(definitionParts(template)) as unknown[]).map(String).join('');
  const definition = JSON.parse(definitionText) as StateMachineDefinition;

  const functionConfig = (nameOrArn: string) => {
    const ref = resolver.referenceOf(nameOrArn);
    if (!ref || ref.type !== 'AWS::Lambda::Function') return undefined;
    const props = template.Resources[ref.logicalId]?.Properties ?? {};
    return {
      logicalId: ref.logicalId,
      timeoutSeconds: typeof props.Timeout === 'number' ? props.Timeout : undefined,
      memoryMB: typeof props.MemorySize === 'number' ? props.MemorySize : undefined,
    };
  };

  const jobDefinition = (arn: string): LocalJobDefinition => {
    const ref = resolver.referenceOf(arn);
    if (!ref || ref.type !== 'AWS::Batch::JobDefinition') {
      throw new ConfigError(`The Train task names job definition ${arn}, which is not a job definition of the template.`);
    }
    const props = (template.Resources[ref.logicalId]?.Properties ?? {}) as {
      ContainerProperties?: { Environment?: Array<{ Name: string; Value: unknown }> };
      RetryStrategy?: RetryStrategy;
      Timeout?: { AttemptDurationSeconds?: number };
    };
    const environment: Record<string, string> = {};
    for (const { Name, Value } of props.ContainerProperties?.Environment ?? []) {
      // A variable the local runtime defines (buckets, endpoint, keys) takes the local value;
      // other references (ARNs of AWS-only resources) mean nothing here and are left out.
      if (Name in runtimeEnvironment) environment[Name] = runtimeEnvironment[Name];
      else if (typeof Value === 'string') environment[Name] = Value;
    }
    return {
      environment,
      retryStrategy: resolver.resolve(props.RetryStrategy) as RetryStrategy | undefined,
      attemptDurationSeconds: props.Timeout?.AttemptDurationSeconds,
    };
  };

  return { stateMachineName: name, definition, resolver, functionConfig, jobDefinition, apiResources: apiResources(template) };
}

/** The full paths of the template's API Gateway resources (AWS::ApiGateway::Resource PathPart chains). */
export function apiResources(template: CfnTemplate): string[] {
  const resources = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::ApiGateway::Resource');
  const byId = new Map(resources);
  const pathOf = (id: string, depth = 0): string => {
    const props = byId.get(id)?.Properties as { ParentId?: unknown; PathPart?: string } | undefined;
    if (!props || depth > 50) return '';
    const parent = (props.ParentId as { Ref?: string } | undefined)?.Ref;
    return `${parent && byId.has(parent) ? pathOf(parent, depth + 1) : ''}/${props.PathPart ?? ''}`;
  };
  const hasMethod = new Set(
    Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::ApiGateway::Method')
      .map((r) => (r.Properties?.ResourceId as { Ref?: string } | undefined)?.Ref)
      .filter((id): id is string => typeof id === 'string'),
  );
  return resources.filter(([id]) => hasMethod.has(id)).map(([id]) => pathOf(id));
}
