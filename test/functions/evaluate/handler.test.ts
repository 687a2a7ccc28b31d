import { BadRequestError, ConfigError } from '../../../functions/core/errors';
import { handler } from '../../../functions/evaluate/handler';

describe('evaluate handler', () => {
  const saved = process.env.MODEL_BUCKET;
  afterEach(() => {
    if (saved === undefined) delete process.env.MODEL_BUCKET;
    else process.env.MODEL_BUCKET = saved;
  });

  test('an event without bucket is a BadRequestError naming the field', async () => {
    process.env.MODEL_BUCKET = 'models';
    await expect(handler({ runId: 'r' } as never)).rejects.toThrow(BadRequestError);
    await expect(handler({ runId: 'r' } as never)).rejects.toThrow('Evaluate event: expected "bucket" to be a non-empty string, received undefined.');
  });

  test('without MODEL_BUCKET the function fails fast with a ConfigError naming it', async () => {
    delete process.env.MODEL_BUCKET;
    await expect(handler({ runId: 'r', bucket: 'b' } as never)).rejects.toThrow(ConfigError);
    await expect(handler({ runId: 'r', bucket: 'b' } as never)).rejects.toThrow('Environment variable MODEL_BUCKET is required but is not set.');
  });
});
