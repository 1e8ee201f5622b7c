/**
 * The CLI's flags: their declaration for `parseArgs`, which commands accept which, and the
 * request bodies built from them (message scheduling with its callback and retry flags, an app's
 * delivery settings, quotas). Pure; bad values are refused with a {@link UsageError}.
 */
import { UsageError } from './usage';

export const QUOTA_FLAGS = {
  rate: 'ratePerSecond',
  burst: 'burst',
  'max-pending': 'maxPending',
  'max-payload-bytes': 'maxPayloadBytes',
  'max-delay-ms': 'maxDelayMs',
} as const;

export const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  description: { type: 'string' },
  topic: { type: 'string', multiple: true },
  'grace-seconds': { type: 'string' },
  partitions: { type: 'string' },
  'replication-factor': { type: 'string' },
  rate: { type: 'string' },
  burst: { type: 'string' },
  'max-pending': { type: 'string' },
  'max-payload-bytes': { type: 'string' },
  'max-delay-ms': { type: 'string' },
  // messages schedule (and messages update)
  'app-token': { type: 'string' },
  'if-version': { type: 'string' },
  id: { type: 'string' },
  key: { type: 'string' },
  payload: { type: 'string' },
  'payload-base64': { type: 'string' },
  'delay-ms': { type: 'string' },
  'deliver-at': { type: 'string' },
  header: { type: 'string', multiple: true },
  'content-type': { type: 'string' },
  callback: { type: 'string' },
  'callback-name': { type: 'string' },
  'callback-header': { type: 'string', multiple: true },
  method: { type: 'string' },
  'timeout-ms': { type: 'string' },
  'expect-body': { type: 'string' },
  envelope: { type: 'boolean' },
  // messages schedule only (./debounce.ts)
  'debounce-key': { type: 'string' },
  'debounce-window': { type: 'string' },
  'debounce-max-wait': { type: 'string' },
  'debounce-mode': { type: 'string' },
  // retry strategy: a message's (messages schedule) or an app's default (apps delivery)
  'retry-strategy': { type: 'string' },
  'retry-initial-ms': { type: 'string' },
  'retry-max-ms': { type: 'string' },
  'retry-attempts': { type: 'string' },
  // node 20's parseArgs has no negated booleans (allowNegative is node 22).
  'no-jitter': { type: 'boolean' },
  // apps delivery
  'callback-host': { type: 'string', multiple: true },
  'dead-letter-topic': { type: 'string' },
  'alert-after': { type: 'string' },
  'alert-url': { type: 'string' },
  'alert-topic': { type: 'string' },
  'clear-callback-hosts': { type: 'boolean' },
  'clear-dead-letter-topic': { type: 'boolean' },
  'clear-alerts': { type: 'boolean' },
  'clear-retry': { type: 'boolean' },
  // messages list and the bulk messages cancel (./search.ts)
  app: { type: 'string' },
  state: { type: 'string' },
  'due-after': { type: 'string' },
  'due-before': { type: 'string' },
  'created-after': { type: 'string' },
  target: { type: 'string' },
  limit: { type: 'string' },
  all: { type: 'boolean' },
  cursor: { type: 'string' },
} as const;

const RETRY_FLAGS = [
  'retry-strategy',
  'retry-initial-ms',
  'retry-max-ms',
  'retry-attempts',
  'no-jitter',
] as const;
const CALLBACK_FLAGS = [
  'callback',
  'callback-name',
  'callback-header',
  'method',
  'timeout-ms',
  'expect-body',
  'envelope',
] as const;
export const SCHEDULE_FLAGS = [
  'app-token',
  'id',
  'topic',
  'key',
  'payload',
  'payload-base64',
  'delay-ms',
  'deliver-at',
  'header',
  'content-type',
  ...CALLBACK_FLAGS,
  ...RETRY_FLAGS,
] as const;
export const DELIVERY_FLAGS = [
  'callback-host',
  'dead-letter-topic',
  'alert-after',
  'alert-url',
  'alert-topic',
  'clear-callback-hosts',
  'clear-dead-letter-topic',
  'clear-alerts',
  'clear-retry',
  ...RETRY_FLAGS,
] as const;

export type Values = {
  [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true }
    ? string[]
    : (typeof OPTIONS)[K]['type'] extends 'boolean'
      ? boolean
      : string;
};

export function number(
  values: Values,
  flag: keyof typeof OPTIONS,
  integer: boolean,
): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const text = String(raw);
  const value = Number(text);
  if (
    text.trim() === '' ||
    !Number.isFinite(value) ||
    (integer && !Number.isInteger(value)) ||
    value < 0
  ) {
    throw new UsageError(
      `--${flag} expects a non-negative ${integer ? 'integer' : 'number'}, got "${text}"`,
    );
  }
  return value;
}

export function quotas(values: Values): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [flag, key] of Object.entries(QUOTA_FLAGS)) {
    const value = number(values, flag as keyof typeof OPTIONS, flag !== 'rate');
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** `--retry-*` and `--no-jitter` as a retry strategy with only the fields given; undefined for none. */
function retryStrategy(values: Values): Record<string, unknown> | undefined {
  const retry: Record<string, unknown> = {};
  if (values['retry-strategy'] !== undefined) retry.strategy = values['retry-strategy'];
  const initial = number(values, 'retry-initial-ms', true);
  if (initial !== undefined) retry.initialDelayMs = initial;
  const max = number(values, 'retry-max-ms', true);
  if (max !== undefined) retry.maxDelayMs = max;
  const attempts = number(values, 'retry-attempts', true);
  if (attempts !== undefined) retry.maxAttempts = attempts;
  if (values['no-jitter']) retry.jitter = false;
  return Object.keys(retry).length > 0 ? retry : undefined;
}

/** `NAME=VALUE` flags as a header map. */
function headerMap(
  flag: string,
  entries: readonly string[] | undefined,
): Record<string, string> | undefined {
  if (entries === undefined) return undefined;
  const headers: Record<string, string> = {};
  for (const entry of entries) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new UsageError(`--${flag} expects NAME=VALUE, got "${entry}"`);
    headers[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return headers;
}

/** The body of POST /v1/messages, from the schedule flags (the server validates the content). */
export function scheduleBody(values: Values): Record<string, unknown> {
  const body = messageFields(values, 'messages schedule');
  if (body.topic === undefined && body.callback === undefined)
    throw new UsageError('messages schedule: give --topic TOPIC, --callback URL or both');
  return body;
}

/**
 * The message fields given as schedule flags, only those (for `command`'s usage errors): a whole
 * new message for `messages schedule`, the fields to change for `messages update`.
 */
export function messageFields(values: Values, command: string): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (values.id !== undefined) body.id = values.id;
  if (values.topic !== undefined) {
    if (values.topic.length > 1)
      throw new UsageError(`${command}: give --topic once (one Kafka target)`);
    body.topic = values.topic[0];
  }
  if (values.key !== undefined) body.key = values.key;
  const headers = headerMap('header', values.header);
  if (headers) body.headers = headers;
  if (values.payload !== undefined && values['payload-base64'] !== undefined)
    throw new UsageError(`${command}: give either --payload or --payload-base64`);
  if (values.payload !== undefined) {
    try {
      body.payload = JSON.parse(values.payload) as unknown;
    } catch (error) {
      throw new UsageError(
        `--payload expects JSON text (quote strings: '"text"'): ${(error as Error).message}`,
      );
    }
  }
  if (values['payload-base64'] !== undefined) body.payloadBase64 = values['payload-base64'];
  if (values['delay-ms'] !== undefined && values['deliver-at'] !== undefined)
    throw new UsageError(`${command}: give either --delay-ms or --deliver-at`);
  const delay = number(values, 'delay-ms', true);
  if (delay !== undefined) body.delayMs = delay;
  const at = values['deliver-at'];
  if (at !== undefined) body.deliverAt = /^\d+$/.test(at) ? Number(at) : at;
  if (values.callback !== undefined) {
    const callback: Record<string, unknown> = { url: values.callback };
    if (values.method !== undefined) callback.method = values.method.toUpperCase();
    const callbackHeaders = headerMap('callback-header', values['callback-header']);
    if (callbackHeaders) callback.headers = callbackHeaders;
    const timeout = number(values, 'timeout-ms', true);
    if (timeout !== undefined) callback.timeoutMs = timeout;
    if (values['callback-name'] !== undefined) callback.name = values['callback-name'];
    if (values.envelope) callback.envelope = true;
    if (values['expect-body'] !== undefined) callback.expectBody = values['expect-body'];
    body.callback = callback;
  } else {
    const orphan = CALLBACK_FLAGS.find((flag) => flag !== 'callback' && values[flag] !== undefined);
    if (orphan) throw new UsageError(`${command}: --${orphan} needs --callback URL`);
  }
  const retry = retryStrategy(values);
  if (retry) body.retry = retry;
  if (values['content-type'] !== undefined) body.contentType = values['content-type'];
  return body;
}

/** The `delivery` of PATCH /v1/admin/apps/{app}: given settings replace, `--clear-*` sends null. */
export function deliveryPatch(values: Values): Record<string, unknown> {
  const delivery: Record<string, unknown> = {};
  const both = (set: boolean, clear: keyof typeof OPTIONS, what: string): boolean => {
    if (set && values[clear]) throw new UsageError(`apps delivery: --${clear} with ${what}`);
    return values[clear] === true;
  };
  if (both(values['callback-host'] !== undefined, 'clear-callback-hosts', '--callback-host'))
    delivery.callbackHosts = null;
  else if (values['callback-host'] !== undefined)
    delivery.callbackHosts = [...new Set(values['callback-host'])];
  if (
    both(
      values['dead-letter-topic'] !== undefined,
      'clear-dead-letter-topic',
      '--dead-letter-topic',
    )
  )
    delivery.deadLetterTopic = null;
  else if (values['dead-letter-topic'] !== undefined)
    delivery.deadLetterTopic = values['dead-letter-topic'];
  const alertGiven = ['alert-after', 'alert-url', 'alert-topic'].some(
    (flag) => values[flag as keyof typeof OPTIONS] !== undefined,
  );
  if (both(alertGiven, 'clear-alerts', '--alert-*')) delivery.alerts = null;
  else if (alertGiven) {
    const after = number(values, 'alert-after', true);
    // The alerts setting is replaced as a whole, and its threshold is required.
    if (after === undefined)
      throw new UsageError(
        'apps delivery: --alert-after N is required with --alert-url/--alert-topic',
      );
    delivery.alerts = {
      afterAttempts: after,
      ...(values['alert-url'] !== undefined ? { url: values['alert-url'] } : {}),
      ...(values['alert-topic'] !== undefined ? { topic: values['alert-topic'] } : {}),
    };
  }
  const retry = retryStrategy(values);
  if (both(retry !== undefined, 'clear-retry', 'retry flags')) delivery.retry = null;
  else if (retry) delivery.retry = retry;
  if (Object.keys(delivery).length === 0)
    throw new UsageError(
      'apps delivery: nothing to change; see "hourglass --help" for delivery flags',
    );
  return delivery;
}
