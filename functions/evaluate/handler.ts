// Entry point of the evaluate Lambda function; built in its own issue.
export const handler = async (_event: unknown): Promise<never> => {
  throw new Error('evaluate: not implemented yet');
};
