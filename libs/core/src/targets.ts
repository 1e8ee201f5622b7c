/**
 * Delivery targets: where a message goes at its due time. A message has one or more targets
 * (`topic` for Kafka, `callback` for HTTP, or a `targets` list mixing both), and each target is
 * delivered, retried and recorded on its own. Pure: validation and state transitions only.
 *
 * A message with only `topic` is stored as before (no target list: the Kafka fast path). Any
 * other shape is stored with its target list and a state per target.
 */
import type { ErrorDetail } from './errors';
import { AddressPolicy, literalAddressOf } from './address-policy';
import { textProblem, topicNameProblem, TOPIC_RULE } from './input';
import type { RetryStrategy, RetryStrategyKind } from './retry-strategy';
import { RETRY_LIMITS } from './retry-strategy';

export interface KafkaTargetSpec {
  readonly type: 'kafka';
  readonly topic: string;
  readonly key: string | null;
  /** Added to the message's headers (and winning over them) for this target. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface HttpTargetSpec {
  readonly type: 'http';
  readonly url: string;
  readonly method: 'POST' | 'PUT';
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** The handler's name on the receiving side; sent as `hourglass-callback-name`. */
  readonly name: string | null;
  /** Send `{topic, id, deliverAt, body}` instead of the payload bytes. */
  readonly envelope: boolean;
  /** A 2xx must also carry this body (trimmed), e.g. "ok". */
  readonly expectBody: string | null;
}

export type TargetSpec = KafkaTargetSpec | HttpTargetSpec;

export type TargetStatus = 'pending' | 'delivered' | 'failed';

/** Where one target of a message stands. Stored as JSON beside the message. */
export interface TargetState {
  readonly status: TargetStatus;
  /** Attempts that counted (a broker outage does not count). */
  readonly attempts: number;
  /** When the next attempt is due; null: at the message's due time. */
  readonly nextAttemptAtMs: number | null;
  readonly lastError: string | null;
  /** The HTTP status of the last answer, if any. */
  readonly lastStatus: number | null;
  readonly finishedAtMs: number | null;
  /** Whether the alert for `alerts.afterAttempts` was sent already. */
  readonly alerted?: boolean;
}

export const INITIAL_TARGET_STATE: TargetState = Object.freeze({
  status: 'pending',
  attempts: 0,
  nextAttemptAtMs: null,
  lastError: null,
  lastStatus: null,
  finishedAtMs: null,
});

export interface TargetLimits {
  /** @default 8 */
  readonly maxTargets: number;
  /** @default 10000 */
  readonly defaultTimeoutMs: number;
  /** The SSRF guard, for literal addresses (names are checked when connecting). */
  readonly policy: AddressPolicy;
}

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

function reservedCallbackHeader(lower: string): string | null {
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
  if (typeof value.url !== 'string') problems.push({ path: `${path}url`, message: 'required string' });
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
    headers = parseHeaderMap(value.headers, `${path}headers`, problems, reservedCallbackHeader) ?? {};
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
      problems.push({ path: `${path}key`, message: `must be a string of at most ${MAX_KEY_LENGTH}` });
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
    message: 'a target is {"topic": …} (Kafka) or {"url": …} (HTTP), or says "type": "kafka" | "http"',
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
      problems.push({ path: `${path}${field}`, message: `must be an integer from ${min} to ${max}` });
      return fallback;
    }
    return raw;
  };
  let strategy = base.strategy;
  if (value.strategy !== undefined) {
    if (!STRATEGIES.includes(value.strategy as RetryStrategyKind))
      problems.push({ path: `${path}strategy`, message: `must be one of ${STRATEGIES.join(', ')}` });
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

/** The canonical JSON of targets and retry, for the request fingerprint. */
export function canonicalTargetsJson(
  targets: readonly TargetSpec[],
  retry: RetryStrategy | null,
  contentType: string | null,
): string {
  return JSON.stringify([
    targets.map((target) =>
      target.type === 'kafka'
        ? ['kafka', target.topic, target.key, sortedEntries(target.headers)]
        : [
            'http',
            target.url,
            target.method,
            sortedEntries(target.headers),
            target.timeoutMs,
            target.name,
            target.envelope,
            target.expectBody,
          ],
    ),
    retry && [retry.strategy, retry.initialDelayMs, retry.maxDelayMs, retry.maxAttempts, retry.jitter],
    contentType,
  ]);
}

function sortedEntries(headers: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.keys(headers)
    .sort()
    .map((name) => [name, headers[name] as string]);
}

/** A short name for a target in logs, metrics and the attempt log: the topic, or the URL's origin. */
export function targetLabel(target: TargetSpec): string {
  if (target.type === 'kafka') return `kafka:${target.topic}`;
  try {
    return `http:${new URL(target.url).host}`;
  } catch {
    return 'http:?';
  }
}

/** The host of an HTTP target's URL (lower case), for the per-app host allowlist. */
export function callbackHost(target: HttpTargetSpec): string {
  return new URL(target.url).hostname.toLowerCase();
}

/** Whether `host` matches an allowlist entry: `example.com` exactly, `*.example.com` any subdomain. */
export function hostAllowed(host: string, allowlist: readonly string[]): boolean {
  const lower = host.toLowerCase();
  return allowlist.some((entry) => {
    const pattern = entry.toLowerCase();
    if (pattern.startsWith('*.')) return lower.endsWith(pattern.slice(1));
    return lower === pattern;
  });
}

/** Targets that should be attempted when the message fires at `nowMs`. */
export function dueTargetIndexes(states: readonly TargetState[], nowMs: number): number[] {
  const due: number[] = [];
  states.forEach((state, index) => {
    if (state.status === 'pending' && (state.nextAttemptAtMs === null || state.nextAttemptAtMs <= nowMs))
      due.push(index);
  });
  return due;
}

export type MessageOutcome =
  | { readonly kind: 'pending'; readonly nextAtMs: number }
  | { readonly kind: 'delivered' }
  | { readonly kind: 'failed' };

/**
 * What the message is once its targets stand as `states`: delivered when every target is,
 * failed once every target finished with at least one failed, otherwise pending until the
 * earliest next attempt (`fallbackMs` for a pending target with no time of its own).
 */
export function messageOutcome(states: readonly TargetState[], fallbackMs: number): MessageOutcome {
  let next = Number.POSITIVE_INFINITY;
  let failed = false;
  for (const state of states) {
    if (state.status === 'pending') next = Math.min(next, state.nextAttemptAtMs ?? fallbackMs);
    else if (state.status === 'failed') failed = true;
  }
  if (next !== Number.POSITIVE_INFINITY) return { kind: 'pending', nextAtMs: next };
  return failed ? { kind: 'failed' } : { kind: 'delivered' };
}

/** Re-arms failed targets with a fresh attempt budget (POST …/retry); null if none failed. */
export function rearmFailed(states: readonly TargetState[]): TargetState[] | null {
  if (!states.some((state) => state.status === 'failed')) return null;
  return states.map((state) =>
    state.status === 'failed' ? { ...INITIAL_TARGET_STATE, lastError: state.lastError } : state,
  );
}
