// Entry point of the inference Lambda function; built in its own issue.
export const handler = async (_event: unknown): Promise<never> => {
  throw new Error('inference: not implemented yet');
};
