// Entry point of the trigger Lambda function; built in its own issue.
export const handler = async (_event: unknown): Promise<never> => {
  throw new Error('trigger: not implemented yet');
};
