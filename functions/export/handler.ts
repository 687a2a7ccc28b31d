// Entry point of the export Lambda function; built in its own issue.
export const handler = async (_event: unknown): Promise<never> => {
  throw new Error('export: not implemented yet');
};
