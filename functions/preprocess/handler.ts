// Entry point of the preprocess Lambda function; built in its own issue.
export const handler = async (_event: unknown): Promise<never> => {
  throw new Error('preprocess: not implemented yet');
};
