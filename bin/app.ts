#!/usr/bin/env node
import 'source-map-support/register';
import { createApp } from '../lib/app';

// Context (cdk.json or -c key=value): vpcId + vpcSubnetIds + vpcAvailabilityZones + vpcCidr,
// gpuInstanceTypes, maxvCpus, runnableTimeoutMinutes, jobTimeoutMinutes, apiEndpointType,
// apiAuth, apiAllowedCidrs, trainingImageUri, codeVersion, removalPolicy, stackName.
createApp();
