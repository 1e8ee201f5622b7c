/**
 * The message model and the validation of a schedule request (HTTP v1 and gRPC share it).
 * Validation is pure: the clock is passed in, and errors are {@link HourglassError}s whose
 * `details` name every offending field, so one bad request is fixed in one round trip.
 */
import type { ErrorDetail } from './errors';
import { HourglassError } from './errors';
import {
  DEFAULT_MAX_PAYLOAD_DEPTH,
  TOPIC_RULE,
  jsonDepthExceeds,
  textProblem,
  topicNameProblem,
} from './input';
import type { MessageLimits, PayloadEncoding, ScheduleRequest } from './message-model';
import { fingerprintHead, fingerprintOf } from './fingerprint';
export { requestFingerprint } from './fingerprint';
import { canonicalTargetsJson, parseTargetFields } from './targets';
import { DEFAULT_RETRY_STRATEGY } from './retry-strategy';

// The input rules (topic names, NUL, nesting depth) are part of the message API; re-exported here
// so that the package index need not change.
export * from './input';
export * from './message-model';

/** `.` and `..` alone are excluded: URL normalisation would make them unreachable over HTTP. */
export const MESSAGE_ID_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._:-]{1,128}$/;
/** ISO-8601 date-time with a mandatory zone; `Date.parse` alone accepts zone-less local times. */
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:\d{2})$/;
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
  'callback',
  'targets',
  'retry',
  'contentType',
]);

const EMPTY = Buffer.alloc(0);
/** The headers of every message sent without any (read-only everywhere; no object per message). */
const NO_HEADERS: Record<string, string> = Object.freeze({});
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A module-level function rather than a closure per message: creating the closure cost more than
 * the checks (and dev runners such as tsx wrap every named closure in a naming helper).
 */
function addProblem(problems: ErrorDetail[], path: string, field: string, message: string): void {
  problems.push({ path: `${path}${field}`, message });
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
  if (!isPlainObject(body)) {
    throw new HourglassError('invalid_request', 'the message must be a JSON object', [
      { path: path || '/', message: `expected an object, got ${describe(body)}` },
    ]);
  }
  // for…in rather than Object.keys: no array per message.
  for (const field in body) {
    if (Object.hasOwn(body, field) && !KNOWN_FIELDS.has(field))
      addProblem(problems, path, field, `unknown field; allowed: ${[...KNOWN_FIELDS].join(', ')}`);
  }

  let id: string | undefined;
  if (body.id !== undefined) {
    if (typeof body.id !== 'string' || !MESSAGE_ID_PATTERN.test(body.id)) {
      addProblem(
        problems,
        path,
        'id',
        'must be 1-128 characters of A-Z a-z 0-9 . _ : - (and not "." or "..")',
      );
    } else id = body.id;
  }

  const hasTargets = body.targets !== undefined;
  const hasCallback = body.callback !== undefined;
  let topic = '';
  if (body.topic === undefined && !hasTargets && !hasCallback)
    addProblem(
      problems,
      path,
      'topic',
      'required: give "topic" (Kafka), "callback" (HTTP) or "targets" (several)',
    );
  else if (body.topic !== undefined) {
    if (hasTargets)
      addProblem(problems, path, 'topic', 'not with "targets": list the Kafka target there');
    else if (typeof body.topic !== 'string')
      addProblem(problems, path, 'topic', `must be a string, got ${describe(body.topic)}`);
    else if (topicNameProblem(body.topic) !== null)
      addProblem(problems, path, 'topic', `must be ${TOPIC_RULE}`);
    else topic = body.topic;
  }
  if (hasTargets && (hasCallback || body.key !== undefined))
    addProblem(
      problems,
      path,
      hasCallback ? 'callback' : 'key',
      'not with "targets": list every target (and its key) there',
    );
  if (body.key !== undefined && body.key !== null && body.topic === undefined && !hasTargets)
    addProblem(problems, path, 'key', 'a key belongs to a Kafka target: give "topic" too');

  let key: string | null = null;
  if (body.key !== undefined && body.key !== null) {
    if (typeof body.key !== 'string')
      addProblem(problems, path, 'key', `must be a string, got ${describe(body.key)}`);
    else if (body.key.length > MAX_KEY_LENGTH)
      addProblem(problems, path, 'key', `must be at most ${MAX_KEY_LENGTH} characters`);
    else if (textProblem(body.key) !== null)
      addProblem(problems, path, 'key', textProblem(body.key) as string);
    else key = body.key;
  }

  let headers: Record<string, string> = NO_HEADERS;
  if (body.headers !== undefined) {
    if (!isPlainObject(body.headers))
      addProblem(
        problems,
        path,
        'headers',
        `must be an object of strings, got ${describe(body.headers)}`,
      );
    else {
      headers = {};
      const entries = Object.entries(body.headers);
      if (entries.length > MAX_HEADERS)
        addProblem(problems, path, 'headers', `at most ${MAX_HEADERS} headers`);
      for (const [name, value] of entries) {
        if (name.length === 0 || name.length > MAX_HEADER_NAME)
          addProblem(
            problems,
            path,
            `headers/${name}`,
            `name must be 1-${MAX_HEADER_NAME} characters`,
          );
        else if (textProblem(name) !== null)
          addProblem(problems, path, `headers/${name}`, `name ${textProblem(name) as string}`);
        else if (name.toLowerCase().startsWith(RESERVED_HEADER_PREFIX))
          addProblem(
            problems,
            path,
            `headers/${name}`,
            `names starting with "${RESERVED_HEADER_PREFIX}" are reserved`,
          );
        else if (typeof value !== 'string')
          addProblem(problems, path, `headers/${name}`, `must be a string, got ${describe(value)}`);
        else if (value.length > MAX_HEADER_VALUE)
          addProblem(
            problems,
            path,
            `headers/${name}`,
            `must be at most ${MAX_HEADER_VALUE} characters`,
          );
        else if (textProblem(value) !== null)
          addProblem(problems, path, `headers/${name}`, textProblem(value) as string);
        else headers[name] = value;
      }
    }
  }

  let payload: Buffer = EMPTY;
  /** A JSON payload's text: hashed as is, the same bytes as `payload`. */
  let payloadJson: string | undefined;
  let payloadEncoding: PayloadEncoding = 'json';
  const hasJson = body.payload !== undefined;
  const hasBase64 = body.payloadBase64 !== undefined;
  if (hasJson === hasBase64) {
    addProblem(
      problems,
      path,
      'payload',
      'exactly one of "payload" (any JSON value) or "payloadBase64" (bytes) is required',
    );
  } else if (hasJson) {
    const maxDepth = limits.maxPayloadDepth ?? DEFAULT_MAX_PAYLOAD_DEPTH;
    // Measured before JSON.stringify, which recurses and overflows the stack on deep values.
    if (jsonDepthExceeds(body.payload, maxDepth)) {
      addProblem(problems, path, 'payload', `must not nest more than ${maxDepth} levels deep`);
    } else {
      payloadJson = JSON.stringify(body.payload);
      payload = Buffer.from(payloadJson, 'utf8');
    }
  } else if (typeof body.payloadBase64 !== 'string' || !BASE64.test(body.payloadBase64)) {
    addProblem(
      problems,
      path,
      'payloadBase64',
      'must be a standard base64 string (A-Z a-z 0-9 + / with = padding)',
    );
  } else {
    payload = Buffer.from(body.payloadBase64, 'base64');
    payloadEncoding = 'binary';
  }

  let deliverAtMs = Number.NaN;
  /** The due time as it was sent, as JSON text (see {@link requestFingerprint}). */
  let dueJson = 'null';
  const hasDeliverAt = body.deliverAt !== undefined;
  const hasDelay = body.delayMs !== undefined;
  if (hasDeliverAt === hasDelay) {
    addProblem(
      problems,
      path,
      'deliverAt',
      'exactly one of "deliverAt" (ISO-8601 with zone, or epoch ms) or "delayMs" is required',
    );
  } else if (hasDeliverAt) {
    if (typeof body.deliverAt === 'number') {
      if (!Number.isSafeInteger(body.deliverAt) || body.deliverAt < 0)
        addProblem(
          problems,
          path,
          'deliverAt',
          'epoch milliseconds must be a non-negative integer',
        );
      else {
        deliverAtMs = body.deliverAt;
        // A safe integer's JSON text is its String form.
        dueJson = `{"deliverAt":${deliverAtMs}}`;
      }
    } else if (typeof body.deliverAt === 'string' && ISO_WITH_ZONE.test(body.deliverAt)) {
      const parsed = Date.parse(body.deliverAt);
      if (Number.isNaN(parsed)) addProblem(problems, path, 'deliverAt', 'is not a valid date-time');
      else {
        deliverAtMs = parsed;
        dueJson = `{"deliverAt":${JSON.stringify(body.deliverAt)}}`;
      }
    } else {
      addProblem(
        problems,
        path,
        'deliverAt',
        'must be ISO-8601 with a zone (e.g. 2030-01-01T10:00:00Z) or epoch milliseconds',
      );
    }
  } else {
    if (
      typeof body.delayMs !== 'number' ||
      !Number.isSafeInteger(body.delayMs) ||
      body.delayMs < 0
    ) {
      addProblem(problems, path, 'delayMs', 'must be an integer >= 0');
    } else {
      deliverAtMs = nowMs + body.delayMs;
      dueJson = `{"delayMs":${body.delayMs}}`;
    }
  }

  const { targets, retry, retryJson, contentType } = parseTargetFields(
    body,
    topic,
    limits.targets,
    limits.retryBase ?? DEFAULT_RETRY_STRATEGY,
    path,
    problems,
  );

  if (problems.length > 0) {
    throw new HourglassError(
      'invalid_request',
      `invalid message: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      problems,
    );
  }
  if (payload.length > limits.maxPayloadBytes) {
    throw new HourglassError(
      'payload_too_large',
      `payload is ${payload.length} bytes; the limit is ${limits.maxPayloadBytes}`,
      [
        {
          path: `${path}${payloadEncoding === 'json' ? 'payload' : 'payloadBase64'}`,
          message: `at most ${limits.maxPayloadBytes} bytes`,
        },
      ],
    );
  }
  if (deliverAtMs - nowMs > limits.maxDelayMs) {
    throw new HourglassError(
      'delay_too_long',
      `the due time is more than ${Math.floor(limits.maxDelayMs / 86_400_000)} days away`,
      [
        {
          path: `${path}${hasDeliverAt ? 'deliverAt' : 'delayMs'}`,
          message: `at most ${limits.maxDelayMs} ms from now`,
        },
      ],
    );
  }
  if (targets !== null) {
    // The first Kafka target stands for the message in `topic` and `key` (views, statistics).
    const kafka = targets.find((target) => target.type === 'kafka');
    return {
      id,
      topic: kafka?.type === 'kafka' ? kafka.topic : '',
      key: kafka?.type === 'kafka' ? kafka.key : null,
      payload,
      payloadEncoding,
      headers,
      deliverAtMs,
      targets,
      targetsListed: hasTargets,
      retry,
      contentType,
      fingerprint: fingerprintOf(
        // An array where the fast path has the topic's string: the two can never collide.
        fingerprintHead(
          `[${canonicalTargetsJson(targets, null, contentType)},${retryJson}]`,
          null,
          payloadEncoding,
          headers,
          dueJson,
        ),
        payloadJson ?? payload,
      ),
    };
  }
  return {
    id,
    topic,
    key,
    payload,
    payloadEncoding,
    headers,
    deliverAtMs,
    targets: null,
    retry: null,
    contentType: null,
    fingerprint: fingerprintOf(
      // The topic is a valid topic name (TOPIC_PATTERN): its JSON text needs no escapes.
      fingerprintHead(`"${topic}"`, key, payloadEncoding, headers, dueJson),
      payloadJson ?? payload,
    ),
  };
}
