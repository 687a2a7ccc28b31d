/**
 * The synthesized CloudFormation template, read the way the local runtime needs it: the state
 * machine's definition with its resource references resolved to local placeholders, and the
 * training job definition's environment. Nothing here knows what the pipeline contains; it
 * only follows the template.
 */
import { ConfigError } from '../functions/core/errors';

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly Metadata?: Record<string, unknown>;
}

export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Parameters?: Record<string, { Default?: unknown }>;
}

/** The local values resource references resolve to. */
export interface LocalResources {
  readonly region: string;
  readonly account: string;
  readonly dataBucket: string;
  readonly modelBucket: string;
}

/** What a reference resolved to, so a local runner can map an ARN back to the resource. */
export interface ResolvedReference {
  readonly logicalId: string;
  readonly type: string;
  readonly value: string;
}

export class TemplateResolver {
  private readonly bucketNames = new Map<string, string>();
  /** Every placeholder handed out, by value. */
  readonly references = new Map<string, ResolvedReference>();

  constructor(
    readonly template: CfnTemplate,
    readonly local: LocalResources,
  ) {
    this.assignBuckets();
  }

  /** Resolves CloudFormation intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split) recursively. */
  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1) {
      const [fn, arg] = entries[0];
      switch (fn) {
        case 'Ref':
          return this.ref(String(arg));
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg) ? (arg as string[]) : String(arg).split('.');
          return this.getAtt(id, attr);
        }
        case 'Fn::Join': {
          const [sep, parts] = arg as [string, unknown[]];
          return (this.resolve(parts) as unknown[]).map(String).join(sep);
        }
        case 'Fn::Select': {
          const [index, list] = arg as [unknown, unknown];
          return (this.resolve(list) as unknown[])[Number(this.resolve(index))];
        }
        case 'Fn::Split': {
          const [sep, source] = arg as [string, unknown];
          return String(this.resolve(source)).split(sep);
        }
        case 'Fn::Sub': {
          const [text, vars] = Array.isArray(arg) ? (arg as [string, Record<string, unknown>]) : [String(arg), {}];
          return text.replace(/\$\{([^}!][^}]*)\}/g, (_m, name: string) => {
            if (name in vars) return String(this.resolve(vars[name]));
            if (name.includes('.')) {
              const [id, attr] = name.split('.', 2);
              return this.getAtt(id, attr);
            }
            return this.ref(name);
          });
        }
        default:
          if (fn.startsWith('Fn::')) throw new ConfigError(`The local runtime cannot resolve the intrinsic ${fn} (argument ${JSON.stringify(arg)}).`);
      }
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(v)]));
  }

  /** The logical id behind a placeholder this resolver produced, if any. */
  referenceOf(value: string): ResolvedReference | undefined {
    return this.references.get(value);
  }

  /** Logical ids of the template's resources of one type. */
  resourcesOfType(type: string): string[] {
    return Object.entries(this.template.Resources)
      .filter(([, r]) => r.Type === type)
      .map(([id]) => id);
  }

  private ref(name: string): string {
    switch (name) {
      case 'AWS::Partition':
        return 'aws';
      case 'AWS::Region':
        return this.local.region;
      case 'AWS::AccountId':
        return this.local.account;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return 'dlops-local';
      case 'AWS::NoValue':
        return '';
    }
    const parameter = this.template.Parameters?.[name];
    if (parameter) return String(parameter.Default ?? `local-${name}`);
    const resource = this.resource(name);
    const { region, account } = this.local;
    let value: string;
    switch (resource.Type) {
      case 'AWS::S3::Bucket':
        value = this.bucketName(name);
        break;
      case 'AWS::Lambda::Function':
        value = name;
        break;
      case 'AWS::Batch::JobQueue':
        value = `arn:aws:batch:${region}:${account}:job-queue/${name}`;
        break;
      case 'AWS::Batch::JobDefinition':
        value = `arn:aws:batch:${region}:${account}:job-definition/${name}:1`;
        break;
      case 'AWS::StepFunctions::StateMachine':
        value = `arn:aws:states:${region}:${account}:stateMachine:${name}`;
        break;
      default:
        value = `local-${name}`;
    }
    return this.remember(name, resource.Type, value);
  }

  private getAtt(id: string, attr: string): string {
    const resource = this.resource(id);
    const { region, account } = this.local;
    let value: string;
    if (attr === 'Arn' || attr.endsWith('Arn')) {
      switch (resource.Type) {
        case 'AWS::Batch::JobQueue':
        case 'AWS::Batch::JobDefinition':
        case 'AWS::StepFunctions::StateMachine':
          value = this.ref(id);
          break;
        case 'AWS::Lambda::Function':
          value = `arn:aws:lambda:${region}:${account}:function:${id}`;
          break;
        case 'AWS::S3::Bucket':
          value = `arn:aws:s3:::${this.bucketName(id)}`;
          break;
        case 'AWS::IAM::Role':
          value = `arn:aws:iam::${account}:role/${id}`;
          break;
        case 'AWS::SQS::Queue':
          value = `arn:aws:sqs:${region}:${account}:${id}`;
          break;
        default:
          value = `arn:aws:local:${region}:${account}:${resource.Type.replace(/::/g, '-').toLowerCase()}/${id}`;
      }
    } else if (resource.Type === 'AWS::S3::Bucket' && attr === 'RegionalDomainName') {
      value = `${this.bucketName(id)}.s3.${region}.amazonaws.com`;
    } else {
      value = `local-${id}-${attr}`;
    }
    return this.remember(id, resource.Type, value);
  }

  private remember(logicalId: string, type: string, value: string): string {
    this.references.set(value, { logicalId, type, value });
    return value;
  }

  private resource(id: string): CfnResource {
    const resource = this.template.Resources[id];
    if (!resource) throw new ConfigError(`The template references ${id}, which is not one of its resources.`);
    return resource;
  }

  private bucketName(id: string): string {
    return this.bucketNames.get(id) ?? `local-${id.toLowerCase()}`;
  }

  /**
   * Which bucket is which: the variables DATA_BUCKET / MODEL_BUCKET that functions and the job
   * definition receive say it (the construct that owns a bucket sets its variable).
   */
  private assignBuckets(): void {
    const visit = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(visit);
      if (node === null || typeof node !== 'object') return;
      const obj = node as Record<string, unknown>;
      for (const [key, value] of Object.entries(obj)) {
        const refId = refOf(value);
        if (refId && key === 'DATA_BUCKET') this.bucketNames.set(refId, this.local.dataBucket);
        if (refId && key === 'MODEL_BUCKET') this.bucketNames.set(refId, this.local.modelBucket);
      }
      // Batch and ECS list their environment as [{Name, Value}].
      if (typeof obj.Name === 'string' && 'Value' in obj) {
        const refId = refOf(obj.Value);
        if (refId && obj.Name === 'DATA_BUCKET') this.bucketNames.set(refId, this.local.dataBucket);
        if (refId && obj.Name === 'MODEL_BUCKET') this.bucketNames.set(refId, this.local.modelBucket);
      }
      Object.values(obj).forEach(visit);
    };
    visit(this.template.Resources);
  }
}

function refOf(value: unknown): string | undefined {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const ref = (value as Record<string, unknown>).Ref;
    if (typeof ref === 'string') return ref;
  }
  return undefined;
}

/** The one state machine of the template: its logical id, name and raw DefinitionString. */
export function findStateMachine(template: CfnTemplate): { logicalId: string; name: string; definitionString: unknown } {
  const machines = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) {
    throw new ConfigError(`The template must hold exactly one AWS::StepFunctions::StateMachine. Found ${machines.length}.`);
  }
  const [logicalId, resource] = machines[0];
  const props = resource.Properties ?? {};
  const definitionString = props.DefinitionString ?? (props.Definition !== undefined ? JSON.stringify(props.Definition) : undefined);
  if (definitionString === undefined) throw new ConfigError(`State machine ${logicalId} has no DefinitionString.`);
  const name = typeof props.StateMachineName === 'string' ? props.StateMachineName : logicalId;
  return { logicalId, name, definitionString };
}
