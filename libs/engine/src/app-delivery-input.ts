/**
 * Validation of an app's delivery settings as an admin sends them (PATCH /v1/admin/apps/{app}
 * `delivery`): the callback host allowlist, the dead-letter topic, alerts and the default retry
 * strategy. Pure: every problem is added with its path, and nothing is stored here.
 */
import type {
  AddressPolicy,
  AppAlerts,
  AppDeliveryPatch,
  ErrorDetail,
  RetryStrategy,
} from '@hourglass/core';
import {
  DEFAULT_RETRY_STRATEGY,
  RETRY_LIMITS,
  callbackUrlProblem,
  parseRetryStrategy,
  topicNameProblem,
} from '@hourglass/core';

/** Most entries of an app's callback host allowlist. */
export const MAX_CALLBACK_HOSTS = 100;
/** The longest host name DNS allows (RFC 1035), and so the longest allowlist entry. */
export const MAX_HOST_NAME_LENGTH = 253;
/** The highest `alerts.afterAttempts`: no target makes more attempts than this. */
const MAX_ALERT_AFTER_ATTEMPTS = RETRY_LIMITS.maxAttempts;
/**
 * An allowlist entry: a host name of letters, digits, `-` and `_` labels (1-63 each), or `*.`
 * and one, meaning any subdomain. Matched lower-cased against a callback URL's host
 * (core `hostAllowed`); an IPv4 literal is a host name by this rule, and matches only itself.
 */
const HOST_ENTRY =
  /^(\*\.)?[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/i;
const DELIVERY_FIELDS = new Set(['callbackHosts', 'deadLetterTopic', 'alerts', 'retry']);
const ALERT_FIELDS = new Set(['afterAttempts', 'url', 'topic']);

/**
 * A change to an app's delivery settings as the admin sends it: absent fields stay, null clears.
 * `retry` may give any of its fields (the others come from the global default); host names may be
 * in any case (they are stored lower-cased).
 */
export interface AppDeliveryInput {
  readonly callbackHosts?: readonly string[] | null;
  readonly deadLetterTopic?: string | null;
  readonly alerts?: {
    readonly afterAttempts: number;
    readonly url?: string | null;
    readonly topic?: string | null;
  } | null;
  readonly retry?: Partial<RetryStrategy> | null;
}

/** Validates a delivery change; problems are added at `path` + field (`delivery/alerts/url`). */
export function parseDeliveryPatch(
  input: AppDeliveryInput,
  path: string,
  problems: ErrorDetail[],
  policy: AddressPolicy,
): AppDeliveryPatch {
  const value = input as Record<string, unknown>;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push({ path: path.replace(/\/$/, ''), message: 'must be an object' });
    return {};
  }
  unknownFields(value, DELIVERY_FIELDS, path, problems);
  const patch: {
    callbackHosts?: readonly string[] | null;
    deadLetterTopic?: string | null;
    alerts?: AppAlerts | null;
    retry?: RetryStrategy | null;
  } = {};
  if (value.callbackHosts !== undefined)
    patch.callbackHosts =
      value.callbackHosts === null
        ? null
        : callbackHosts(value.callbackHosts, `${path}callbackHosts`, problems);
  if (value.deadLetterTopic !== undefined) {
    if (value.deadLetterTopic === null) patch.deadLetterTopic = null;
    else {
      const problem = topicNameProblem(value.deadLetterTopic);
      if (problem !== null) problems.push({ path: `${path}deadLetterTopic`, message: problem });
      else patch.deadLetterTopic = value.deadLetterTopic as string;
    }
  }
  if (value.alerts !== undefined)
    patch.alerts =
      value.alerts === null ? null : parseAlerts(value.alerts, `${path}alerts/`, problems, policy);
  if (value.retry !== undefined)
    patch.retry =
      value.retry === null
        ? null
        : parseRetryStrategy(value.retry, `${path}retry/`, DEFAULT_RETRY_STRATEGY, problems);
  return patch;
}

function parseAlerts(
  value: unknown,
  path: string,
  problems: ErrorDetail[],
  policy: AddressPolicy,
): AppAlerts | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push({ path: path.replace(/\/$/, ''), message: 'must be an object' });
    return null;
  }
  const alerts = value as Record<string, unknown>;
  const before = problems.length;
  unknownFields(alerts, ALERT_FIELDS, path, problems);
  const after = alerts.afterAttempts;
  if (
    typeof after !== 'number' ||
    !Number.isSafeInteger(after) ||
    after < 1 ||
    after > MAX_ALERT_AFTER_ATTEMPTS
  )
    problems.push({
      path: `${path}afterAttempts`,
      message: `required; an integer from 1 to ${MAX_ALERT_AFTER_ATTEMPTS}`,
    });
  let url: string | null = null;
  if (alerts.url !== undefined && alerts.url !== null) {
    const problem =
      typeof alerts.url === 'string' ? callbackUrlProblem(alerts.url, policy) : 'must be a string';
    if (problem !== null) problems.push({ path: `${path}url`, message: problem });
    else url = alerts.url as string;
  }
  let topic: string | null = null;
  if (alerts.topic !== undefined && alerts.topic !== null) {
    const problem = topicNameProblem(alerts.topic);
    if (problem !== null) problems.push({ path: `${path}topic`, message: problem });
    else topic = alerts.topic as string;
  }
  if (problems.length > before) return null;
  if (url === null && topic === null) {
    problems.push({
      path: path.replace(/\/$/, ''),
      message: 'give "url", "topic" or both: where the alerts go',
    });
    return null;
  }
  return { afterAttempts: after as number, url, topic };
}

/** The allowlist entries lower-cased and without duplicates, or null after adding problems. */
function callbackHosts(value: unknown, path: string, problems: ErrorDetail[]): string[] | null {
  if (!Array.isArray(value) || value.length > MAX_CALLBACK_HOSTS) {
    problems.push({
      path,
      message: `must be an array of at most ${MAX_CALLBACK_HOSTS} host names`,
    });
    return null;
  }
  const hosts: string[] = [];
  let ok = true;
  value.forEach((entry: unknown, index) => {
    // Checked as sent (ASCII only), then lower-cased: a few non-ASCII letters lower-case to ASCII.
    const host =
      typeof entry === 'string' && entry.length <= MAX_HOST_NAME_LENGTH && HOST_ENTRY.test(entry)
        ? entry.toLowerCase()
        : null;
    if (host === null) {
      problems.push({
        path: `${path}/${index}`,
        message: `must be a host name such as "example.com" or "*.example.com" (at most ${MAX_HOST_NAME_LENGTH} characters)`,
      });
      ok = false;
    } else if (!hosts.includes(host)) hosts.push(host);
  });
  return ok ? hosts : null;
}

export function unknownFields(
  value: Record<string, unknown>,
  known: ReadonlySet<string>,
  path: string,
  problems: ErrorDetail[],
): void {
  for (const field of Object.keys(value))
    if (!known.has(field))
      problems.push({
        path: `${path}${field}`,
        message: `unknown field; allowed: ${[...known].join(', ')}`,
      });
}
