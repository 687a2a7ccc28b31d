// Entry point of the register Lambda function; built in its own issue.
export const handler = async (_event: unknown): Promise<never> => {
  throw new Error('register: not implemented yet');
};
