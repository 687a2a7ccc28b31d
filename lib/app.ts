import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { stackPropsFromContext } from './context';
import { DlopsStack } from './dlops-stack';
import { acknowledgeNagFindings } from './nag';

/**
 * The CDK app of dlops: the stack from context, cdk-nag's AwsSolutions pack as a policy
 * validation plugin (synth fails on any finding not acknowledged in lib/nag.ts).
 * bin/app.ts runs it for the CLI; tests call it with their own context.
 */
export function createApp(props: AppProps = {}): { app: App; stack: DlopsStack } {
  const app = new App(props);
  const get = (key: string): unknown => app.node.tryGetContext(key);
  const stack = new DlopsStack(app, (get('stackName') as string | undefined) ?? 'Dlops', {
    ...stackPropsFromContext(get),
    description: 'dlops: deep learning pipeline (S3 -> Step Functions -> Lambda + Batch GPU -> ONNX) and inference API',
  });
  acknowledgeNagFindings(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
