#!/usr/bin/env node
import 'source-map-support/register';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DlopsStack, type DlopsStackProps } from '../lib/dlops-stack';
import { acknowledgeNagFindings } from '../lib/nag';
import { stackPropsFromContext } from '../lib/context';

const app = new App();
const stack = new DlopsStack(app, app.node.tryGetContext('stackName') ?? 'Dlops', stackPropsFromContext((k) => app.node.tryGetContext(k)) satisfies DlopsStackProps);
acknowledgeNagFindings(stack);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
