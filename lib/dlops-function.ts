import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaNode from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The repository root: esbuild resolves from here and the lock file lives here. */
export const PROJECT_ROOT = path.resolve(__dirname, '..');

/**
 * Modules that never go into a bundle. `@tensorflow/tfjs-node(-gpu)` are optional native
 * backends that the code only tries to load (they are not installed here, and Lambda runs
 * the pure-JS backend); `onnxruntime-node` is native and is copied in by hand (see
 * `onnxRuntimeCommands`).
 */
export const ALWAYS_EXTERNAL = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];
export const ONNX_RUNTIME_MODULE = 'onnxruntime-node';

export interface DlopsFunctionProps extends lambdaNode.NodejsFunctionProps {
  /** Path of the handler module, e.g. `functions/trigger/handler.ts` (relative to the repository root or absolute). */
  readonly entry: string;
  /**
   * Ship ONNX Runtime's native Linux x64 binaries next to the bundle. The function then must
   * run on x86_64: ONNX Runtime has crashed at import on Lambda arm64 (upstream issue 10038).
   * @default false - no native module is shipped and the function runs on arm64
   */
  readonly onnxRuntime?: boolean;
  /**
   * How long the function's log group keeps events.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Shell commands (run by local bundling after esbuild) that copy ONNX Runtime into the asset
 * with only the Linux x64 binary: the npm package holds every platform's binaries (~290 MB),
 * Lambda's unzipped limit is 250 MB and Linux x64 alone is ~47 MB. Copying instead of
 * `bundling.nodeModules` avoids an `npm install` during synth.
 */
export function onnxRuntimeCommands(inputDir: string, outputDir: string): string[] {
  const ort = `${inputDir}/node_modules/onnxruntime-node`;
  const common = `${inputDir}/node_modules/onnxruntime-common`;
  const outOrt = `${outputDir}/node_modules/onnxruntime-node`;
  return [
    `mkdir -p "${outOrt}/bin/napi-v6/linux" "${outputDir}/node_modules"`,
    `cp "${ort}/package.json" "${outOrt}/package.json"`,
    `cp -R "${ort}/dist" "${outOrt}/dist"`,
    `cp -R "${ort}/bin/napi-v6/linux/x64" "${outOrt}/bin/napi-v6/linux/x64"`,
    `cp -R "${common}" "${outputDir}/node_modules/onnxruntime-common"`,
  ];
}

const MIN_MEMORY_MB = 128;
const MAX_MEMORY_MB = 10_240;
const MAX_TIMEOUT_SECONDS = 900;

/**
 * Merges the dlops defaults with the caller's props. The caller always wins, field by field:
 * environment variables are merged key by key, bundling options field by field, and external
 * modules are the union of both lists. Exported so that the merge itself is tested.
 */
export function mergeFunctionProps(defaults: DlopsFunctionProps, props: DlopsFunctionProps): DlopsFunctionProps {
  const onnx = props.onnxRuntime ?? defaults.onnxRuntime ?? false;
  const externals = new Set([
    ...ALWAYS_EXTERNAL,
    ...(onnx ? [ONNX_RUNTIME_MODULE] : []),
    ...(defaults.bundling?.externalModules ?? []),
    ...(props.bundling?.externalModules ?? []),
  ]);
  const callerHooks = props.bundling?.commandHooks;
  const commandHooks: lambdaNode.ICommandHooks | undefined =
    onnx || callerHooks
      ? {
          beforeBundling: (i, o) => callerHooks?.beforeBundling(i, o) ?? [],
          beforeInstall: (i, o) => callerHooks?.beforeInstall(i, o) ?? [],
          afterBundling: (i, o) => [...(onnx ? onnxRuntimeCommands(i, o) : []), ...(callerHooks?.afterBundling(i, o) ?? [])],
        }
      : undefined;
  // `{ memorySize: undefined }` means "not set", not "erase the default".
  const given = Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined)) as DlopsFunctionProps;
  return {
    ...defaults,
    ...given,
    onnxRuntime: onnx,
    environment: { ...defaults.environment, ...props.environment },
    bundling: {
      ...defaults.bundling,
      ...Object.fromEntries(Object.entries(props.bundling ?? {}).filter(([, v]) => v !== undefined)),
      externalModules: [...externals],
      ...(commandHooks ? { commandHooks } : {}),
    },
  };
}

/**
 * The one Lambda function construct of dlops: Node.js 22, esbuild bundling on this machine
 * (never Docker), X-Ray active tracing, its own log group with a retention, a role that may
 * write only to that log group, and sane memory and timeout. Every default can be overridden
 * by the caller's props, which are merged, never replaced (see `mergeFunctionProps`).
 */
export class DlopsFunction extends lambdaNode.NodejsFunction {
  constructor(scope: Construct, id: string, props: DlopsFunctionProps) {
    const onnx = props.onnxRuntime ?? false;
    const architecture = props.architecture ?? (onnx ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64);
    if (onnx && architecture !== lambda.Architecture.X86_64) {
      throw new Error(`architecture must be x86_64 when onnxRuntime is true (ONNX Runtime ships only Linux x64 here). Received ${architecture.name}.`);
    }
    if (props.memorySize !== undefined && (props.memorySize < MIN_MEMORY_MB || props.memorySize > MAX_MEMORY_MB)) {
      throw new Error(`memorySize must be between ${MIN_MEMORY_MB} and ${MAX_MEMORY_MB.toLocaleString('en-US')} MB. Received ${props.memorySize}.`);
    }
    if (props.timeout !== undefined && (props.timeout.toSeconds() < 1 || props.timeout.toSeconds() > MAX_TIMEOUT_SECONDS)) {
      throw new Error(`timeout must be between 1 and ${MAX_TIMEOUT_SECONDS} seconds. Received ${props.timeout.toSeconds()}.`);
    }

    // Built before super() because the function needs them; `scope` owns them so their ids stay stable.
    const ownLogGroup = props.logGroup
      ? undefined
      : new logs.LogGroup(scope, `${id}Logs`, {
          retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
          removalPolicy: RemovalPolicy.DESTROY,
        });
    const logGroup = props.logGroup ?? ownLogGroup;
    const role =
      props.role ??
      new iam.Role(scope, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Execution role of the ${id} function`,
      });
    // The role may write only to its own log group (no AWSLambdaBasicExecutionRole with logs:* on *).
    if (!props.role && ownLogGroup) ownLogGroup.grantWrite(role);

    const entry = path.isAbsolute(props.entry) ? props.entry : path.join(PROJECT_ROOT, props.entry);
    const defaults: DlopsFunctionProps = {
      entry,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture,
      memorySize: 512,
      timeout: Duration.minutes(1),
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      role,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: id,
      },
      bundling: {
        // The AWS SDK is bundled (not taken from the runtime) so Lambda runs the version the tests ran.
        externalModules: [],
        minify: true,
        sourceMap: true,
        target: 'node22',
        forceDockerBundling: false,
        format: lambdaNode.OutputFormat.CJS,
      },
    };
    const merged = mergeFunctionProps(defaults, { ...props, entry });
    const { onnxRuntime: _onnx, logRetention: _retention, ...functionProps } = merged;
    super(scope, id, functionProps);
  }
}
