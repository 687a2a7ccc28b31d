import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Template } from 'aws-cdk-lib/assertions';
import { ALWAYS_EXTERNAL, DlopsFunction, mergeFunctionProps, ONNX_RUNTIME_MODULE, type DlopsFunctionProps } from '../../lib/dlops-function';
import { CDK_CONTEXT, NO_BUNDLING, type CfnTemplate } from './support';

const LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024;

function sizeOf(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, child) => sum + sizeOf(join(path, child)), 0);
}

describe('mergeFunctionProps', () => {
  const defaults: DlopsFunctionProps = {
    entry: 'a.ts',
    memorySize: 512,
    timeout: Duration.minutes(1),
    environment: { NODE_OPTIONS: '--enable-source-maps', POWERTOOLS_SERVICE_NAME: 'x' },
    bundling: { minify: true, sourceMap: true, externalModules: ['left-pad'] },
  };

  test('caller values win over defaults, field by field', () => {
    const merged = mergeFunctionProps(defaults, { entry: 'b.ts', memorySize: 2048 });
    expect(merged.entry).toBe('b.ts');
    expect(merged.memorySize).toBe(2048);
    expect(merged.timeout?.toSeconds()).toBe(60);
  });

  test('a prop passed as undefined does not erase the default', () => {
    const merged = mergeFunctionProps(defaults, { entry: 'b.ts', memorySize: undefined, timeout: undefined });
    expect(merged.memorySize).toBe(512);
    expect(merged.timeout?.toSeconds()).toBe(60);
  });

  test('environment variables are merged key by key; the caller wins on a clash', () => {
    const merged = mergeFunctionProps(defaults, { entry: 'b.ts', environment: { DATA_BUCKET: 'd', POWERTOOLS_SERVICE_NAME: 'mine' } });
    expect(merged.environment).toEqual({ NODE_OPTIONS: '--enable-source-maps', POWERTOOLS_SERVICE_NAME: 'mine', DATA_BUCKET: 'd' });
  });

  test('bundling is merged field by field and external modules are the union, always with the optional native TF.js backends', () => {
    const merged = mergeFunctionProps(defaults, { entry: 'b.ts', bundling: { minify: false, externalModules: ['sharp'] } });
    expect(merged.bundling?.minify).toBe(false);
    expect(merged.bundling?.sourceMap).toBe(true);
    expect([...(merged.bundling?.externalModules ?? [])].sort()).toEqual([...ALWAYS_EXTERNAL, 'left-pad', 'sharp'].sort());
    expect(merged.bundling?.externalModules).not.toContain(ONNX_RUNTIME_MODULE);
  });

  test('onnxRuntime keeps onnxruntime-node external and copies it after bundling, before the caller\'s own hook', () => {
    const merged = mergeFunctionProps(defaults, {
      entry: 'b.ts',
      onnxRuntime: true,
      bundling: { commandHooks: { beforeBundling: () => [], beforeInstall: () => [], afterBundling: () => ['echo mine'] } },
    });
    expect(merged.bundling?.externalModules).toContain(ONNX_RUNTIME_MODULE);
    const after = merged.bundling!.commandHooks!.afterBundling('/in', '/out');
    expect(after.at(-1)).toBe('echo mine');
    expect(after.join('\n')).toContain('/in/node_modules/onnxruntime-node/bin/napi-v6/linux/x64');
    expect(after.join('\n')).not.toMatch(/darwin|win32|arm64/);
  });
});

describe('DlopsFunction', () => {
  let template: CfnTemplate;
  let stack: Stack;
  let fn: DlopsFunction;

  beforeAll(() => {
    stack = new Stack(new App({ context: NO_BUNDLING }), 'F');
    fn = new DlopsFunction(stack, 'Fn', {
      entry: 'functions/trigger/handler.ts',
      environment: { STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:x', NODE_OPTIONS: '--enable-source-maps --max-old-space-size=200' },
      memorySize: 1024,
    });
    template = Template.fromStack(stack).toJSON() as CfnTemplate;
  });

  test('defaults: nodejs22.x, arm64, active tracing, timeout; caller memory and environment kept', () => {
    const props = template.Resources[stack.getLogicalId(fn.node.defaultChild as never)].Properties!;
    expect(props).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' }, Timeout: 60, MemorySize: 1024 });
    expect(props.Environment.Variables).toEqual({
      STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:x',
      NODE_OPTIONS: '--enable-source-maps --max-old-space-size=200',
      POWERTOOLS_SERVICE_NAME: 'Fn',
    });
  });

  test('its own log group with a retention, and a role that may write only there (no managed policy)', () => {
    const props = template.Resources[stack.getLogicalId(fn.node.defaultChild as never)].Properties!;
    const logGroupId = props.LoggingConfig.LogGroup.Ref as string;
    expect(template.Resources[logGroupId].Properties!.RetentionInDays).toBe(30);
    const roleId = props.Role['Fn::GetAtt'][0] as string;
    expect(template.Resources[roleId].Properties!.ManagedPolicyArns).toBeUndefined();
    const policy = Object.values(template.Resources).find((r) => r.Type === 'AWS::IAM::Policy')!;
    const logs = (policy.Properties!.PolicyDocument.Statement as any[]).find((s) => JSON.stringify(s.Action).includes('logs:'));
    expect(logs.Resource).toEqual({ 'Fn::GetAtt': [logGroupId, 'Arn'] });
  });

  test('onnxRuntime defaults to x86_64', () => {
    const s = new Stack(new App({ context: NO_BUNDLING }), 'G');
    const f = new DlopsFunction(s, 'Ort', { entry: 'functions/inference/handler.ts', onnxRuntime: true });
    expect(f.architecture).toBe(lambda.Architecture.X86_64);
  });
});

describe('DlopsFunctionProps validation', () => {
  const stack = () => new Stack(new App({ context: NO_BUNDLING }), 'V');
  test('onnxRuntime on arm64 throws', () => {
    expect(() => new DlopsFunction(stack(), 'F', { entry: 'functions/inference/handler.ts', onnxRuntime: true, architecture: lambda.Architecture.ARM_64 })).toThrow(
      /architecture must be x86_64 when onnxRuntime is true .* Received arm64./,
    );
  });
  test('memorySize below 128 throws', () => {
    expect(() => new DlopsFunction(stack(), 'F', { entry: 'functions/trigger/handler.ts', memorySize: 64 })).toThrow(/memorySize must be between 128 and 10,240 MB. Received 64./);
  });
  test('timeout over 15 minutes throws', () => {
    expect(() => new DlopsFunction(stack(), 'F', { entry: 'functions/trigger/handler.ts', timeout: Duration.minutes(16) })).toThrow(
      /timeout must be between 1 and 900 seconds. Received 960./,
    );
  });
});

describe('bundled inference asset (real esbuild bundling, no Docker)', () => {
  let outdir: string;
  let assetDir: string;

  beforeAll(() => {
    outdir = mkdtempSync(join(tmpdir(), 'dlops-asset-'));
    const app = new App({ outdir, context: CDK_CONTEXT });
    const stack = new Stack(app, 'Asset');
    const fn = new DlopsFunction(stack, 'Inference', { entry: 'functions/inference/handler.ts', onnxRuntime: true });
    app.synth();
    const code = (fn.node.defaultChild as lambda.CfnFunction).code as { s3Key?: string };
    expect(code).toBeDefined();
    const dirs = readdirSync(outdir).filter((d) => d.startsWith('asset.') && existsSync(join(outdir, d, 'index.js')));
    expect(dirs).toHaveLength(1);
    assetDir = join(outdir, dirs[0]);
  }, 120_000);

  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('fits Lambda\'s 250 MB unzipped limit', () => {
    const bytes = sizeOf(assetDir);
    console.log(`inference asset: ${(bytes / 1024 / 1024).toFixed(1)} MB unzipped`);
    expect(bytes).toBeLessThan(LAMBDA_UNZIPPED_LIMIT);
    expect(bytes).toBeGreaterThan(10 * 1024 * 1024); // the native runtime really is in there
  });

  test('ships only the Linux x64 ONNX Runtime binaries', () => {
    const bin = join(assetDir, 'node_modules/onnxruntime-node/bin/napi-v6');
    expect(readdirSync(bin)).toEqual(['linux']);
    expect(readdirSync(join(bin, 'linux'))).toEqual(['x64']);
    expect(existsSync(join(assetDir, 'node_modules/onnxruntime-common/package.json'))).toBe(true);
  });

  test('the shipped onnxruntime-node loads from the asset (this machine is Linux x64, like the function)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ort = require(join(assetDir, 'node_modules/onnxruntime-node')) as { InferenceSession?: unknown };
    expect(typeof ort.InferenceSession).toBe('function');
  });

  test('the bundle loads onnxruntime-node at run time instead of inlining it, and never inlines tfjs-node', () => {
    const bundle = readFileSync(join(assetDir, 'index.js'), 'utf8');
    // Booleans, not toMatch: a failure would print the whole minified bundle.
    expect(/(require|import)\("onnxruntime-node"\)/.test(bundle)).toBe(true);
    expect(bundle.includes('napi-v6/darwin')).toBe(false);
    expect(/(require|import)\("@tensorflow\/tfjs-node"\)/.test(bundle) || !bundle.includes('tfjs-node')).toBe(true);
  });
});
