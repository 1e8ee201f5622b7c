/**
 * The message model and the validation of a schedule request (HTTP v1 and gRPC share it).
 * Validation is pure: the clock is passed in, and errors are {@link HourglassError}s whose
 * `details` name every offending field, so one bad request is fixed in one round trip.
 */
import { createHash } from 'node:crypto'; // hashing only: no I/O
import type { ErrorDetail } from './errors';
import { HourglassError } from './errors';
import type { MessageState } from './state-machine';

export type PayloadEncoding = 'json' | 'binary';

/** A message as stored. Times are epoch milliseconds. */
export interface StoredMessage {
  readonly app: string;
  readonly id: string;
  readonly slot: number;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly payloadEncoding: PayloadEncoding;
  readonly headers: Readonly<Record<string, string>>;
  readonly deliverAtMs: number;
  readonly state: MessageState;
  readonly createdAtMs: number;
  /** When it reached delivered, cancelled or failed. */
  readonly finishedAtMs: number | null;
  readonly attempts: number;
  readonly lastError: string | null;
  /** Fingerprint of the request as sent, for idempotent re-sends; see {@link requestFingerprint}. */
  readonly fingerprint: string;
}

/** A validated schedule request, before an id and slot are assigned. */
export interface ScheduleRequest {
  readonly id: string | undefined;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly payloadEncoding: PayloadEncoding;
  readonly headers: Readonly<Record<string, string>>;
  readonly deliverAtMs: number;
  readonly fingerprint: string;
}

export interface MessageLimits {
  /** @default 1048576 (1 MiB) */
  readonly maxPayloadBytes: number;
  /** @default 3650 days */
  readonly maxDelayMs: number;
  /** @default 1000 */
  readonly maxBatchSize: number;
}

/** `.` and `..` alone are excluded: URL normalisation would make them unreachable over HTTP. */
export const MESSAGE_ID_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._:-]{1,128}$/;
/** Kafka's own rule for topic names. */
export const TOPIC_PATTERN = /^[A-Za-z0-9._-]{1,249}$/;
/** ISO-8601 date-time with a mandatory zone; `Date.parse` alone accepts zone-less local times. */
const ISO_WITH_ZONE =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:\d{2})$/;
/** Headers Hourglass adds to every Kafka record; users may not set them. */
export const RESERVED_HEADER_PREFIX = 'hourglass-';
const MAX_HEADERS = 64;
const MAX_HEADER_NAME = 256;
const MAX_HEADER_VALUE = 8192;
const MAX_KEY_LENGTH = 4096;
const KNOWN_FIELDS = new Set([
  'id',
  'topic',
  'key',
  'payload',
  'payloadBase64',
  'headers',
  'deliverAt',
  'delayMs',
]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/**
 * Validates one schedule request. `path` prefixes detail paths (e.g. `messages/3/`) in batches.
 * Throws `invalid_request` listing every problem, `payload_too_large` or `delay_too_long`.
 */
export function parseScheduleRequest(
  body: unknown,
  limits: MessageLimits,
  nowMs: number,
  path = '',
): ScheduleRequest {
  const problems: ErrorDetail[] = [];
  const problem = (field: string, message: string): void => {
    problems.push({ path: `${path}${field}`, message });
  };
  if (!isPlainObject(body)) {
    throw new HourglassError('invalid_request', 'the message must be a JSON object', [
      { path: path || '/', message: `expected an object, got ${describe(body)}` },
    ]);
  }
  for (const field of Object.keys(body)) {
    if (!KNOWN_FIELDS.has(field)) problem(field, `unknown field; allowed: ${[...KNOWN_FIELDS].join(', ')}`);
  }

  let id: string | undefined;
  if (body.id !== undefined) {
    if (typeof body.id !== 'string' || !MESSAGE_ID_PATTERN.test(body.id)) {
      problem('id', 'must be 1-128 characters of A-Z a-z 0-9 . _ : - (and not "." or "..")');
    } else id = body.id;
  }

  let topic = '';
  if (typeof body.topic !== 'string') problem('topic', `required string, got ${describe(body.topic)}`);
  else if (!TOPIC_PATTERN.test(body.topic)) problem('topic', 'must be 1-249 characters of A-Z a-z 0-9 . _ -');
  else topic = body.topic;

  let key: string | null = null;
  if (body.key !== undefined && body.key !== null) {
    if (typeof body.key !== 'string') problem('key', `must be a string, got ${describe(body.key)}`);
    else if (body.key.length > MAX_KEY_LENGTH) problem('key', `must be at most ${MAX_KEY_LENGTH} characters`);
    else key = body.key;
  }

  const headers: Record<string, string> = {};
  if (body.headers !== undefined) {
    if (!isPlainObject(body.headers)) problem('headers', `must be an object of strings, got ${describe(body.headers)}`);
    else {
      const entries = Object.entries(body.headers);
      if (entries.length > MAX_HEADERS) problem('headers', `at most ${MAX_HEADERS} headers`);
      for (const [name, value] of entries) {
        if (name.length === 0 || name.length > MAX_HEADER_NAME) problem(`headers/${name}`, `name must be 1-${MAX_HEADER_NAME} characters`);
        else if (name.toLowerCase().startsWith(RESERVED_HEADER_PREFIX)) problem(`headers/${name}`, `names starting with "${RESERVED_HEADER_PREFIX}" are reserved`);
        else if (typeof value !== 'string') problem(`headers/${name}`, `must be a string, got ${describe(value)}`);
        else if (value.length > MAX_HEADER_VALUE) problem(`headers/${name}`, `must be at most ${MAX_HEADER_VALUE} characters`);
        else headers[name] = value;
      }
    }
  }

  let payload: Buffer = Buffer.alloc(0);
  let payloadEncoding: PayloadEncoding = 'json';
  const hasJson = body.payload !== undefined;
  const hasBase64 = body.payloadBase64 !== undefined;
  if (hasJson === hasBase64) {
    problem('payload', 'exactly one of "payload" (any JSON value) or "payloadBase64" (bytes) is required');
  } else if (hasJson) {
    payload = Buffer.from(JSON.stringify(body.payload), 'utf8');
  } else if (typeof body.payloadBase64 !== 'string' || !BASE64.test(body.payloadBase64)) {
    problem('payloadBase64', 'must be a standard base64 string (A-Z a-z 0-9 + / with = padding)');
  } else {
    payload = Buffer.from(body.payloadBase64, 'base64');
    payloadEncoding = 'binary';
  }

  let deliverAtMs = Number.NaN;
  let dueAsSent: unknown;
  const hasDeliverAt = body.deliverAt !== undefined;
  const hasDelay = body.delayMs !== undefined;
  if (hasDeliverAt === hasDelay) {
    problem('deliverAt', 'exactly one of "deliverAt" (ISO-8601 with zone, or epoch ms) or "delayMs" is required');
  } else if (hasDeliverAt) {
    dueAsSent = { deliverAt: body.deliverAt };
    if (typeof body.deliverAt === 'number') {
      if (!Number.isSafeInteger(body.deliverAt) || body.deliverAt < 0) problem('deliverAt', 'epoch milliseconds must be a non-negative integer');
      else deliverAtMs = body.deliverAt;
    } else if (typeof body.deliverAt === 'string' && ISO_WITH_ZONE.test(body.deliverAt)) {
      const parsed = Date.parse(body.deliverAt);
      if (Number.isNaN(parsed)) problem('deliverAt', 'is not a valid date-time');
      else deliverAtMs = parsed;
    } else {
      problem('deliverAt', 'must be ISO-8601 with a zone (e.g. 2030-01-01T10:00:00Z) or epoch milliseconds');
    }
  } else {
    dueAsSent = { delayMs: body.delayMs };
    if (typeof body.delayMs !== 'number' || !Number.isSafeInteger(body.delayMs) || body.delayMs < 0) {
      problem('delayMs', 'must be an integer >= 0');
    } else deliverAtMs = nowMs + body.delayMs;
  }

  if (problems.length > 0) {
    throw new HourglassError('invalid_request', `invalid message: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, problems);
  }
  if (payload.length > limits.maxPayloadBytes) {
    throw new HourglassError('payload_too_large', `payload is ${payload.length} bytes; the limit is ${limits.maxPayloadBytes}`, [
      { path: `${path}${payloadEncoding === 'json' ? 'payload' : 'payloadBase64'}`, message: `at most ${limits.maxPayloadBytes} bytes` },
    ]);
  }
  if (deliverAtMs - nowMs > limits.maxDelayMs) {
    throw new HourglassError('delay_too_long', `the due time is more than ${Math.floor(limits.maxDelayMs / 86_400_000)} days away`, [
      { path: `${path}${hasDeliverAt ? 'deliverAt' : 'delayMs'}`, message: `at most ${limits.maxDelayMs} ms from now` },
    ]);
  }
  return {
    id,
    topic,
    key,
    payload,
    payloadEncoding,
    headers,
    deliverAtMs,
    fingerprint: requestFingerprint(topic, key, payload, payloadEncoding, headers, dueAsSent),
  };
}

/**
 * Two sends of the same id are "identical" when their fingerprints match. The due time enters as it
 * was sent (`delayMs: 5000`, not the computed instant), so a client retrying a relative delay a
 * second later is recognised as a re-send and not as a conflict.
 */
export function requestFingerprint(
  topic: string,
  key: string | null,
  payload: Buffer,
  payloadEncoding: PayloadEncoding,
  headers: Readonly<Record<string, string>>,
  dueAsSent: unknown,
): string {
  const sortedHeaders = Object.keys(headers)
    .sort()
    .map((name) => [name, headers[name]]);
  return createHash('sha256')
    .update(JSON.stringify([topic, key, payloadEncoding, sortedHeaders, dueAsSent]))
    .update('\u0000')
    .update(payload)
    .digest('base64url');
}

export function parseBatch(body: unknown, limits: MessageLimits): unknown[] {
  if (!isPlainObject(body) || !Array.isArray(body.messages)) {
    throw new HourglassError('invalid_request', 'the body must be {"messages": [...]}', [
      { path: 'messages', message: 'required array' },
    ]);
  }
  if (body.messages.length === 0 || body.messages.length > limits.maxBatchSize) {
    throw new HourglassError('batch_too_large', `a batch holds 1 to ${limits.maxBatchSize} messages; got ${body.messages.length}`, [
      { path: 'messages', message: `1 to ${limits.maxBatchSize} items` },
    ]);
  }
  return body.messages as unknown[];
}
