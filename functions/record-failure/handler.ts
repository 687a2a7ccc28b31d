// Entry point of the record-failure Lambda function; built in its own issue.
export const handler = async (_event: unknown): Promise<never> => {
  throw new Error('record-failure: not implemented yet');
};
