/**
 * Validation of targets as clients send them: `callback`, `targets` entries and `retry`
 * (docs/callbacks.md). Every problem is added to `problems` with its path, so one bad request is
 * fixed in one round trip. Pure: the SSRF guard's policy judges literal addresses only.
 */
import type { ErrorDetail } from './errors';
import type { AddressPolicy } from './address-policy';
import { literalAddressOf } from './address-policy';
import { textProblem, topicNameProblem, TOPIC_RULE } from './input';
import type { RetryStrategy, RetryStrategyKind } from './retry-strategy';
import { RETRY_LIMITS } from './retry-strategy';
import type { HttpTargetSpec, KafkaTargetSpec, TargetLimits, TargetSpec } from './targets';

export const MAX_CALLBACK_TIMEOUT_MS = 60_000;
export const MAX_CALLBACK_URL_LENGTH = 2048;
const NAME_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_EXPECT_BODY = 1024;
const MAX_HEADERS = 64;
const MAX_HEADER_NAME = 256;
const MAX_HEADER_VALUE = 8192;
const MAX_KEY_LENGTH = 4096;
/** Headers a callback may not set: Hourglass's own, the signature's, and those undici owns. */
const FORBIDDEN_CALLBACK_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'te',
  'trailer',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
]);
const HTTP_FIELDS = new Set([
  'type',
  'url',
  'method',
  'headers',
  'timeoutMs',
  'name',
  'envelope',
  'expectBody',
]);
const KAFKA_FIELDS = new Set(['type', 'topic', 'key', 'headers']);
const RETRY_FIELDS = new Set(['strategy', 'initialDelayMs', 'maxDelayMs', 'maxAttempts', 'jitter']);
const STRATEGIES: readonly RetryStrategyKind[] = ['fixed', 'linear', 'exponential'];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownFields(
  value: Record<string, unknown>,
  known: ReadonlySet<string>,
  path: string,
  problems: ErrorDetail[],
): void {
  for (const field in value)
    if (Object.hasOwn(value, field) && !known.has(field))
      problems.push({
        path: `${path}${field}`,
        message: `unknown field; allowed: ${[...known].join(', ')}`,
      });
}

/** Validates a header map (`reserved` names refused); returns it, or null after adding problems. */
export function parseHeaderMap(
  value: unknown,
  path: string,
  problems: ErrorDetail[],
  reserved: (lowerName: string) => string | null,
): Record<string, string> | null {
  if (!isPlainObject(value)) {
    problems.push({ path, message: 'must be an object of strings' });
    return null;
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_HEADERS) {
    problems.push({ path, message: `at most ${MAX_HEADERS} headers` });
    return null;
  }
  const headers: Record<string, string> = {};
  let ok = true;
  for (const [name, header] of entries) {
    const at = `${path}/${name}`;
    const problem =
      name.length === 0 || name.length > MAX_HEADER_NAME
        ? `name must be 1-${MAX_HEADER_NAME} characters`
        : textProblem(name) !== null
          ? `name ${textProblem(name) as string}`
          : (reserved(name.toLowerCase()) ??
            (typeof header !== 'string'
              ? 'must be a string'
              : header.length > MAX_HEADER_VALUE
                ? `must be at most ${MAX_HEADER_VALUE} characters`
                : textProblem(header)));
    if (problem !== null) {
      problems.push({ path: at, message: problem });
      ok = false;
    } else headers[name] = header as string;
  }
  return ok ? headers : null;
}

function reservedKafkaHeader(lower: string): string | null {
  return lower.startsWith('hourglass-') ? 'names starting with "hourglass-" are reserved' : null;
}

/** Why a header may not be sent with a callback (lower-case name), or null. */
export function reservedCallbackHeader(lower: string): string | null {
  if (lower.startsWith('hourglass-')) return 'names starting with "hourglass-" are reserved';
  if (FORBIDDEN_CALLBACK_HEADERS.has(lower)) return `"${lower}" is set by Hourglass`;
  // HTTP header names are tokens.
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(lower)) return 'is not a valid HTTP header name';
  return null;
}

/**
 * Why `url` cannot be a callback URL, or null. Checked at accept time: scheme, userinfo, length,
 * and a literal IP address in any notation (the URL parser normalises `0x7f000001` and friends).
 */
export function callbackUrlProblem(url: string, policy: AddressPolicy): string | null {
  if (url.length > MAX_CALLBACK_URL_LENGTH)
    return `must be at most ${MAX_CALLBACK_URL_LENGTH} characters`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be an absolute http or https URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    return `must be http or https, not ${parsed.protocol.replace(/:$/, '')}`;
  if (parsed.username !== '' || parsed.password !== '')
    return 'must not carry credentials (user:password@); use callback headers';
  if (parsed.hostname === '') return 'must name a host';
  const literal = literalAddressOf(parsed.hostname);
  if (literal !== null) return policy.refusal(literal);
  return null;
}

function parseHttpTarget(
  value: Record<string, unknown>,
  path: string,
  limits: TargetLimits,
  problems: ErrorDetail[],
): HttpTargetSpec | null {
  const before = problems.length;
  unknownFields(value, HTTP_FIELDS, path, problems);
  let url = '';
  if (typeof value.url !== 'string')
    problems.push({ path: `${path}url`, message: 'required string' });
  else {
    const problem = callbackUrlProblem(value.url, limits.policy);
    if (problem !== null) problems.push({ path: `${path}url`, message: problem });
    else url = value.url;
  }
  let method: 'POST' | 'PUT' = 'POST';
  if (value.method !== undefined) {
    if (value.method !== 'POST' && value.method !== 'PUT')
      problems.push({ path: `${path}method`, message: 'must be "POST" or "PUT"' });
    else method = value.method;
  }
  let headers: Record<string, string> = {};
  if (value.headers !== undefined)
    headers =
      parseHeaderMap(value.headers, `${path}headers`, problems, reservedCallbackHeader) ?? {};
  let timeoutMs = limits.defaultTimeoutMs;
  if (value.timeoutMs !== undefined) {
    if (
      typeof value.timeoutMs !== 'number' ||
      !Number.isSafeInteger(value.timeoutMs) ||
      value.timeoutMs < 1 ||
      value.timeoutMs > MAX_CALLBACK_TIMEOUT_MS
    )
      problems.push({
        path: `${path}timeoutMs`,
        message: `must be an integer from 1 to ${MAX_CALLBACK_TIMEOUT_MS}`,
      });
    else timeoutMs = value.timeoutMs;
  }
  let name: string | null = null;
  if (value.name !== undefined && value.name !== null) {
    if (typeof value.name !== 'string' || !NAME_PATTERN.test(value.name))
      problems.push({
        path: `${path}name`,
        message: 'must be 1-128 characters of A-Z a-z 0-9 . _ : -',
      });
    else name = value.name;
  }
  let envelope = false;
  if (value.envelope !== undefined) {
    if (typeof value.envelope !== 'boolean')
      problems.push({ path: `${path}envelope`, message: 'must be a boolean' });
    else envelope = value.envelope;
  }
  let expectBody: string | null = null;
  if (value.expectBody !== undefined && value.expectBody !== null) {
    if (
      typeof value.expectBody !== 'string' ||
      value.expectBody.length === 0 ||
      value.expectBody.length > MAX_EXPECT_BODY
    )
      problems.push({
        path: `${path}expectBody`,
        message: `must be a string of 1-${MAX_EXPECT_BODY} characters`,
      });
    else if (textProblem(value.expectBody) !== null)
      problems.push({
        path: `${path}expectBody`,
        message: textProblem(value.expectBody) as string,
      });
    else expectBody = value.expectBody.trim();
  }
  if (problems.length > before) return null;
  return { type: 'http', url, method, headers, timeoutMs, name, envelope, expectBody };
}

function parseKafkaTarget(
  value: Record<string, unknown>,
  path: string,
  problems: ErrorDetail[],
): KafkaTargetSpec | null {
  const before = problems.length;
  unknownFields(value, KAFKA_FIELDS, path, problems);
  let topic = '';
  if (topicNameProblem(value.topic) !== null)
    problems.push({ path: `${path}topic`, message: `required; must be ${TOPIC_RULE}` });
  else topic = value.topic as string;
  let key: string | null = null;
  if (value.key !== undefined && value.key !== null) {
    if (typeof value.key !== 'string' || value.key.length > MAX_KEY_LENGTH)
      problems.push({
        path: `${path}key`,
        message: `must be a string of at most ${MAX_KEY_LENGTH}`,
      });
    else if (textProblem(value.key) !== null)
      problems.push({ path: `${path}key`, message: textProblem(value.key) as string });
    else key = value.key;
  }
  let headers: Record<string, string> = {};
  if (value.headers !== undefined)
    headers = parseHeaderMap(value.headers, `${path}headers`, problems, reservedKafkaHeader) ?? {};
  if (problems.length > before) return null;
  return { type: 'kafka', topic, key, headers };
}

/** One entry of `targets`: `{type?: "kafka", topic, …}` or `{type?: "http", url, …}`. */
export function parseTarget(
  value: unknown,
  path: string,
  limits: TargetLimits,
  problems: ErrorDetail[],
): TargetSpec | null {
  if (!isPlainObject(value)) {
    problems.push({ path: path.replace(/\/$/, ''), message: 'must be an object' });
    return null;
  }
  const type =
    value.type ?? (value.url !== undefined ? 'http' : value.topic !== undefined ? 'kafka' : null);
  if (type === 'http') return parseHttpTarget(value, path, limits, problems);
  if (type === 'kafka') return parseKafkaTarget(value, path, problems);
  problems.push({
    path: `${path}type`,
    message:
      'a target is {"topic": …} (Kafka) or {"url": …} (HTTP), or says "type": "kafka" | "http"',
  });
  return null;
}

/** The callback shorthand: `callback: {url, …}` is one HTTP target. */
export function parseCallback(
  value: unknown,
  path: string,
  limits: TargetLimits,
  problems: ErrorDetail[],
): HttpTargetSpec | null {
  if (!isPlainObject(value)) {
    problems.push({ path: path.replace(/\/$/, ''), message: 'must be an object with a "url"' });
    return null;
  }
  if (value.type !== undefined && value.type !== 'http') {
    problems.push({ path: `${path}type`, message: 'a callback is an HTTP target' });
    return null;
  }
  return parseHttpTarget(value, path, limits, problems);
}

export function parseTargetList(
  value: unknown,
  path: string,
  limits: TargetLimits,
  problems: ErrorDetail[],
): TargetSpec[] | null {
  if (!Array.isArray(value) || value.length === 0 || value.length > limits.maxTargets) {
    problems.push({
      path: path.replace(/\/$/, ''),
      message: `must be an array of 1 to ${limits.maxTargets} targets`,
    });
    return null;
  }
  const targets: TargetSpec[] = [];
  let ok = true;
  value.forEach((entry: unknown, index) => {
    const target = parseTarget(entry, `${path}${index}/`, limits, problems);
    if (target) targets.push(target);
    else ok = false;
  });
  return ok ? targets : null;
}

/**
 * A retry strategy as sent (every field optional), merged over `base` (the app's or the global
 * default). Returns null after adding problems.
 */
export function parseRetryStrategy(
  value: unknown,
  path: string,
  base: RetryStrategy,
  problems: ErrorDetail[],
): RetryStrategy | null {
  if (!isPlainObject(value)) {
    problems.push({ path: path.replace(/\/$/, ''), message: 'must be an object' });
    return null;
  }
  const before = problems.length;
  unknownFields(value, RETRY_FIELDS, path, problems);
  const integer = (field: string, min: number, max: number, fallback: number): number => {
    const raw = value[field];
    if (raw === undefined) return fallback;
    if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < min || raw > max) {
      problems.push({
        path: `${path}${field}`,
        message: `must be an integer from ${min} to ${max}`,
      });
      return fallback;
    }
    return raw;
  };
  let strategy = base.strategy;
  if (value.strategy !== undefined) {
    if (!STRATEGIES.includes(value.strategy as RetryStrategyKind))
      problems.push({
        path: `${path}strategy`,
        message: `must be one of ${STRATEGIES.join(', ')}`,
      });
    else strategy = value.strategy as RetryStrategyKind;
  }
  const initialDelayMs = integer('initialDelayMs', 0, RETRY_LIMITS.maxDelayMs, base.initialDelayMs);
  const maxDelayMs = integer('maxDelayMs', 0, RETRY_LIMITS.maxDelayMs, base.maxDelayMs);
  const maxAttempts = integer('maxAttempts', 1, RETRY_LIMITS.maxAttempts, base.maxAttempts);
  let jitter = base.jitter;
  if (value.jitter !== undefined) {
    if (typeof value.jitter !== 'boolean')
      problems.push({ path: `${path}jitter`, message: 'must be a boolean' });
    else jitter = value.jitter;
  }
  if (problems.length === before && maxDelayMs < initialDelayMs)
    problems.push({ path: `${path}maxDelayMs`, message: 'must be at least initialDelayMs' });
  if (problems.length > before) return null;
  return { strategy, initialDelayMs, maxDelayMs, maxAttempts, jitter };
}

/** type/subtype with parameters; no control characters anywhere (it becomes a header value). */
const CONTENT_TYPE =
  // eslint-disable-next-line no-control-regex
  /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+([ \t]*;[ \t]*[A-Za-z0-9!#$&^_.+-]+=("[^"\\\x00-\x1f\x7f]*"|[A-Za-z0-9!#$&^_.+-]+))*$/;
const MAX_CONTENT_TYPE = 256;

export interface TargetFields {
  /** null: the Kafka fast path (only `topic`). */
  readonly targets: TargetSpec[] | null;
  readonly retry: RetryStrategy | null;
  /** The retry strategy as sent, for the fingerprint (an app default changing is no conflict). */
  readonly retryJson: string;
  readonly contentType: string | null;
}

/**
 * The target fields of a schedule request: `callback`, `targets`, `retry` and `contentType`
 * (`topic`, already checked by the caller, joins `callback` as a Kafka target). Without
 * `limits` (callbacks not enabled) any of them is a problem.
 */
export function parseTargetFields(
  body: Record<string, unknown>,
  topic: string,
  limits: TargetLimits | undefined,
  retryBase: RetryStrategy,
  path: string,
  problems: ErrorDetail[],
): TargetFields {
  const hasTargets = body.targets !== undefined;
  const hasCallback = body.callback !== undefined;
  const hasRetry = body.retry !== undefined;
  const none: TargetFields = { targets: null, retry: null, retryJson: 'null', contentType: null };
  if (!hasTargets && !hasCallback && !hasRetry && body.contentType === undefined) return none;
  if (!limits) {
    problems.push({
      path: `${path}${hasCallback ? 'callback' : 'targets'}`,
      message: 'not enabled on this node',
    });
    return none;
  }
  let targets: TargetSpec[] | null;
  if (hasTargets) targets = parseTargetList(body.targets, `${path}targets/`, limits, problems);
  else {
    targets = [];
    if (topic !== '')
      targets.push({
        type: 'kafka',
        topic,
        key: typeof body.key === 'string' ? body.key : null,
        headers: {},
      });
    if (hasCallback) {
      const callback = parseCallback(body.callback, `${path}callback/`, limits, problems);
      if (callback) targets.push(callback);
      else targets = null;
    }
  }
  let retry: RetryStrategy | null = retryBase;
  let retryJson = 'null';
  if (hasRetry) {
    retry = parseRetryStrategy(body.retry, `${path}retry/`, retryBase, problems);
    const sent = isPlainObject(body.retry) ? body.retry : {};
    retryJson = JSON.stringify([
      sent.strategy ?? null,
      sent.initialDelayMs ?? null,
      sent.maxDelayMs ?? null,
      sent.maxAttempts ?? null,
      sent.jitter ?? null,
    ]);
  }
  let contentType: string | null = null;
  if (body.contentType !== undefined) {
    if (
      typeof body.contentType !== 'string' ||
      body.contentType.length > MAX_CONTENT_TYPE ||
      !CONTENT_TYPE.test(body.contentType)
    )
      problems.push({
        path: `${path}contentType`,
        message: 'must be a media type such as application/json',
      });
    else contentType = body.contentType;
  }
  // The message's own headers go to callbacks too, so they follow the callback header rules.
  if (targets?.some((target) => target.type === 'http') && isPlainObject(body.headers)) {
    for (const name of Object.keys(body.headers)) {
      const problem = reservedCallbackHeader(name.toLowerCase());
      if (problem !== null && !name.toLowerCase().startsWith('hourglass-'))
        problems.push({
          path: `${path}headers/${name}`,
          message: `${problem} (the message has a callback)`,
        });
    }
  }
  return { targets, retry, retryJson, contentType };
}
