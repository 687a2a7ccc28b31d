import { Logger } from '@aws-lambda-powertools/logger';

/** The one structured JSON logger; each module takes a child with its own service name. */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'dlops' });
