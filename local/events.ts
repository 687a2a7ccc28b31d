/**
 * The EventBridge stand-in between S3 and the trigger: an s3rver object-created notification
 * becomes the "Object Created" event S3 sends to EventBridge, and the rule's event pattern from
 * the template decides whether the trigger sees it.
 * Event shape: https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
 */
import { randomUUID } from 'node:crypto';

/** One record of s3rver's notification (the S3 event notification format). */
export interface S3NotificationRecord {
  readonly eventName: string;
  readonly eventTime?: string;
  readonly awsRegion?: string;
  readonly requestParameters?: { readonly sourceIPAddress?: string };
  readonly responseElements?: Record<string, string>;
  readonly s3: {
    readonly bucket: { readonly name: string };
    readonly object: { readonly key: string; readonly size?: number; readonly eTag?: string; readonly sequencer?: string };
  };
}

export interface ObjectCreatedEvent {
  readonly version: '0';
  readonly id: string;
  readonly 'detail-type': 'Object Created';
  readonly source: 'aws.s3';
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: string[];
  readonly detail: {
    readonly version: '0';
    readonly bucket: { readonly name: string };
    readonly object: { readonly key: string; readonly size: number; readonly etag: string; readonly sequencer: string };
    readonly 'request-id': string;
    readonly requester: string;
    readonly 'source-ip-address': string;
    readonly reason: 'PutObject' | 'CopyObject' | 'PostObject' | 'CompleteMultipartUpload';
  };
}

const REASONS: Record<string, ObjectCreatedEvent['detail']['reason']> = {
  'ObjectCreated:Put': 'PutObject',
  'ObjectCreated:Copy': 'CopyObject',
  'ObjectCreated:Post': 'PostObject',
  'ObjectCreated:CompleteMultipartUpload': 'CompleteMultipartUpload',
};

/** The EventBridge event for an object-created record; undefined for other records (deletes). */
export function toObjectCreatedEvent(record: S3NotificationRecord, region: string, account: string): ObjectCreatedEvent | undefined {
  const reason = REASONS[record.eventName];
  if (reason === undefined) return undefined;
  const { bucket, object } = record.s3;
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Object Created',
    source: 'aws.s3',
    account,
    time: (record.eventTime ?? new Date().toISOString()).replace(/\.\d{3}Z$/, 'Z'),
    region,
    resources: [`arn:aws:s3:::${bucket.name}`],
    detail: {
      version: '0',
      bucket: { name: bucket.name },
      object: {
        // S3 notifications URL-encode the key (spaces as '+'); EventBridge's detail does not.
        key: decodeURIComponent(object.key.replace(/\+/g, ' ')),
        size: object.size ?? 0,
        etag: (object.eTag ?? '').replace(/"/g, ''),
        sequencer: object.sequencer ?? '',
      },
      'request-id': record.responseElements?.['x-amz-request-id'] ?? randomUUID(),
      requester: account,
      'source-ip-address': record.requestParameters?.sourceIPAddress ?? '127.0.0.1',
      reason,
    },
  };
}

/**
 * EventBridge pattern matching for what rules use here: arrays of exact values and the
 * `prefix`, `suffix`, `wildcard`, `exists` and `anything-but` (value list) operators.
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
 */
export function matchesPattern(pattern: Record<string, unknown>, event: unknown): boolean {
  for (const [field, expected] of Object.entries(pattern)) {
    const value = event !== null && typeof event === 'object' ? (event as Record<string, unknown>)[field] : undefined;
    if (Array.isArray(expected)) {
      if (!expected.some((rule) => matchesValue(rule, value))) return false;
    } else if (expected !== null && typeof expected === 'object') {
      if (!matchesPattern(expected as Record<string, unknown>, value)) return false;
    } else {
      return false;
    }
  }
  return true;
}

function matchesValue(rule: unknown, value: unknown): boolean {
  if (rule === null || typeof rule !== 'object') return value === rule;
  const [op, arg] = Object.entries(rule as Record<string, unknown>)[0] ?? [];
  switch (op) {
    case 'prefix':
      return typeof value === 'string' && value.startsWith(String(arg));
    case 'suffix':
      return typeof value === 'string' && value.endsWith(String(arg));
    case 'wildcard':
      return typeof value === 'string' && wildcardRegex(String(arg)).test(value);
    case 'exists':
      return (value !== undefined) === Boolean(arg);
    case 'anything-but':
      return Array.isArray(arg) ? !arg.includes(value) : value !== arg;
    default:
      return false;
  }
}

function wildcardRegex(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}
