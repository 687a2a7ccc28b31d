import { matchesPattern, toObjectCreatedEvent, type S3NotificationRecord } from '../../local/events';

const record = (key: string, eventName = 'ObjectCreated:Put'): S3NotificationRecord => ({
  eventName,
  eventTime: '2026-12-04T20:00:00.123Z',
  s3: { bucket: { name: 'dlops-data' }, object: { key, size: 12, eTag: '"abc123"', sequencer: '18D' } },
});

// The rule lib/pipeline.ts defines, with its bucket reference resolved.
const rule = {
  source: ['aws.s3'],
  'detail-type': ['Object Created'],
  detail: { bucket: { name: ['dlops-data'] }, object: { key: [{ wildcard: 'datasets/*/dataset.json' }] } },
};

describe('S3 -> EventBridge', () => {
  it('turns a put notification into the Object Created event with an unquoted ETag', () => {
    const event = toObjectCreatedEvent(record('datasets/digits/dataset.json'), 'us-east-1', '000000000000');
    expect(event).toMatchObject({
      source: 'aws.s3',
      'detail-type': 'Object Created',
      time: '2026-12-04T20:00:00Z',
      resources: ['arn:aws:s3:::dlops-data'],
      detail: { bucket: { name: 'dlops-data' }, object: { key: 'datasets/digits/dataset.json', etag: 'abc123', size: 12 }, reason: 'PutObject' },
    });
  });

  it('decodes the key as S3 notifications encode it', () => {
    expect(toObjectCreatedEvent(record('datasets/my+digits/a%2Bb.csv'), 'r', 'a')?.detail.object.key).toBe('datasets/my digits/a+b.csv');
  });

  it('ignores deletes', () => {
    expect(toObjectCreatedEvent(record('datasets/x/dataset.json', 'ObjectRemoved:Delete'), 'r', 'a')).toBeUndefined();
  });

  it('given the pipeline rule, a manifest matches and a data file or another bucket does not', () => {
    const event = (key: string, bucket = 'dlops-data') => ({ ...toObjectCreatedEvent(record(key), 'r', 'a')!, detail: { ...toObjectCreatedEvent(record(key), 'r', 'a')!.detail, bucket: { name: bucket } } });
    expect(matchesPattern(rule, event('datasets/digits/dataset.json'))).toBe(true);
    expect(matchesPattern(rule, event('datasets/digits/data/digits.csv'))).toBe(false);
    expect(matchesPattern(rule, event('datasets/digits/dataset.json', 'other'))).toBe(false);
  });

  it('supports prefix, suffix, exists and anything-but', () => {
    const e = { a: 'datasets/x.csv', b: 1 };
    expect(matchesPattern({ a: [{ prefix: 'datasets/' }] }, e)).toBe(true);
    expect(matchesPattern({ a: [{ suffix: '.json' }] }, e)).toBe(false);
    expect(matchesPattern({ c: [{ exists: false }] }, e)).toBe(true);
    expect(matchesPattern({ b: [{ 'anything-but': [1, 2] }] }, e)).toBe(false);
  });
});
