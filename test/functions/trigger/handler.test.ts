const saved = { ...process.env };
afterAll(() => {
  process.env = saved;
});

test('without STATE_MACHINE_ARN the handler fails fast, naming the variable', async () => {
  delete process.env.STATE_MACHINE_ARN;
  const { handler } = await import('../../../functions/trigger/handler');
  await expect(
    handler({ detail: { bucket: { name: 'b' }, object: { key: 'datasets/iris/dataset.json', etag: 'e' } } }),
  ).rejects.toThrow(/STATE_MACHINE_ARN is required but is not set/);
});
