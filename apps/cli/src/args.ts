/**
 * Command-line parsing: argv → a {@link Command}, or a {@link UsageError} (exit code 2). Pure, so
 * every command's parsing is unit-tested without a server.
 */
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const DEFAULT_URL = 'http://127.0.0.1:8081';
/** The local cluster's well-known admin token (a node refuses it off loopback). */
export const DEFAULT_ADMIN_TOKEN = 'admin-token';

export interface Globals {
  readonly url: string;
  readonly token: string;
  readonly json: boolean;
}

/** One API call, described: what the CLI sends and how it prints the answer. */
export interface Command {
  readonly name: string;
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly body?: Record<string, unknown>;
  /**
   * The token to send instead of the admin token: an app token, for the one command that is not
   * an admin call (`messages schedule`: the admin token cannot publish).
   */
  readonly appToken?: string;
  /** How to print the response for humans. */
  readonly view: View;
}

export type View =
  | 'apps'
  | 'app'
  | 'issued'
  | 'deleted'
  | 'secret'
  | 'message'
  | 'attempts'
  | 'cancelled'
  | 'stats'
  | 'slots'
  | 'nodes'
  | 'ack';

const QUOTA_FLAGS = {
  rate: 'ratePerSecond',
  burst: 'burst',
  'max-pending': 'maxPending',
  'max-payload-bytes': 'maxPayloadBytes',
  'max-delay-ms': 'maxDelayMs',
} as const;

const OPTIONS = {
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
  // messages schedule
  'app-token': { type: 'string' },
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
const SCHEDULE_FLAGS = [
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
const DELIVERY_FLAGS = [
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

type Values = {
  [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true }
    ? string[]
    : (typeof OPTIONS)[K]['type'] extends 'boolean'
      ? boolean
      : string;
};

export const USAGE = `hourglass — the Hourglass admin CLI (talks to the admin API under /v1/admin)

usage: hourglass <group> <command> [arguments] [flags]

  apps list
  apps get <app>
  apps create <app> [--description TEXT] [--topic TOPIC]... [quota flags]
  apps update <app> --description TEXT
  apps delete <app>
  apps disable <app> | apps enable <app>
  apps rotate-secret <app> [--grace-seconds N]  (default 86400: callbacks carry both signatures that long)
  apps delivery <app> [delivery flags]           (callback hosts, dead letters, alerts, default retry)
  tokens rotate <app> [--grace-seconds N]       (default 3600: old tokens keep working that long)
  topics add <app> <topic> [--partitions N] [--replication-factor N]
  topics remove <app> <topic>
  quotas set <app> [quota flags]                 (replaces all quotas; a flag left out means no limit)
  slots list | slots pin <slot> <node> | slots unpin <slot>
  nodes list | nodes drain <id> | nodes undrain <id>
  messages get <app> <id> | messages cancel <app> <id>
  messages attempts <app> <id>                   (delivery attempts of its callbacks, oldest first)
  messages retry <app> <id>                      (re-arms the failed targets of a failed message)
  messages schedule --app-token TOKEN [schedule flags]
                                                 (POST /v1/messages as the app; the admin token cannot publish)
  stats

quota flags: --rate N (messages/s) --burst N --max-pending N --max-payload-bytes N --max-delay-ms N

schedule flags (at least one of --topic and --callback; see docs/callbacks.md):
  --app-token TOKEN      the app's token (default $HOURGLASS_APP_TOKEN)
  --id ID  --topic TOPIC  --key KEY  --header NAME=VALUE...  --content-type TYPE
  --payload JSON | --payload-base64 B64
  --delay-ms N | --deliver-at ISO-8601-or-epoch-ms
  --callback URL [--callback-name NAME] [--method POST|PUT] [--timeout-ms N]
                 [--expect-body TEXT] [--envelope] [--callback-header NAME=VALUE]...
  retry flags

retry flags (a message's strategy, or an app's default with apps delivery; left out: the default):
  --retry-strategy fixed|linear|exponential  --retry-initial-ms N  --retry-max-ms N
  --retry-attempts N (the first attempt included)  --no-jitter

delivery flags (each setting given replaces the app's; left out: unchanged):
  --callback-host HOST...      the only hosts its callbacks may call (e.g. example.com, *.example.com)
  --dead-letter-topic TOPIC    where a target that finally fails is also produced
  --alert-after N [--alert-url URL] [--alert-topic TOPIC]
                               alert when a target's attempts reach N, and when it finally fails
  retry flags                  the app's default retry strategy
  --clear-callback-hosts  --clear-dead-letter-topic  --clear-alerts  --clear-retry

flags:
  --url URL      node to talk to (default $HOURGLASS_URL or ${DEFAULT_URL})
  --token TOKEN  admin token (default $HOURGLASS_ADMIN_TOKEN or "${DEFAULT_ADMIN_TOKEN}", the local cluster's)
  --json         print the server's JSON answer (for scripts)
  -h, --help     this help

exit codes: 0 done, 1 the server refused or could not be reached, 2 bad usage
`;

export type Parsed =
  | { readonly help: true }
  | { readonly help: false; readonly globals: Globals; readonly command: Command };

function number(values: Values, flag: keyof typeof OPTIONS, integer: boolean): number | undefined {
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

function quotas(values: Values): Record<string, number> {
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
function scheduleBody(values: Values): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (values.id !== undefined) body.id = values.id;
  if (values.topic !== undefined) {
    if (values.topic.length > 1)
      throw new UsageError('messages schedule: give --topic once (one Kafka target)');
    body.topic = values.topic[0];
  }
  if (values.key !== undefined) body.key = values.key;
  const headers = headerMap('header', values.header);
  if (headers) body.headers = headers;
  if (values.payload !== undefined && values['payload-base64'] !== undefined)
    throw new UsageError('messages schedule: give either --payload or --payload-base64');
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
    throw new UsageError('messages schedule: give either --delay-ms or --deliver-at');
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
    if (orphan) throw new UsageError(`messages schedule: --${orphan} needs --callback URL`);
  }
  if (body.topic === undefined && body.callback === undefined)
    throw new UsageError('messages schedule: give --topic TOPIC, --callback URL or both');
  const retry = retryStrategy(values);
  if (retry) body.retry = retry;
  if (values['content-type'] !== undefined) body.contentType = values['content-type'];
  return body;
}

/** The `delivery` of PATCH /v1/admin/apps/{app}: given settings replace, `--clear-*` sends null. */
function deliveryPatch(values: Values): Record<string, unknown> {
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

const seg = encodeURIComponent;

export function parse(argv: readonly string[], env: NodeJS.ProcessEnv = {}): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const values = parsed.values as Values;
  const [group, action, ...rest] = parsed.positionals;
  if (values.help || group === undefined || group === 'help') return { help: true };
  const globals: Globals = {
    url: (values.url ?? env.HOURGLASS_URL ?? DEFAULT_URL).replace(/\/+$/, ''),
    token: values.token ?? env.HOURGLASS_ADMIN_TOKEN ?? DEFAULT_ADMIN_TOKEN,
    json: values.json === true,
  };
  const used = new Set(
    Object.keys(values).filter((key) => !['url', 'token', 'json', 'help'].includes(key)),
  );
  const allow = (...flags: string[]): void => {
    const extra = [...used].filter((flag) => !flags.includes(flag));
    if (extra.length > 0)
      throw new UsageError(`${group} ${action ?? ''}: unexpected flag --${extra[0]}`);
  };
  const args = (...names: string[]): string[] => {
    if (rest.length !== names.length) {
      throw new UsageError(
        `${group} ${action}: expected ${names.map((n) => `<${n}>`).join(' ') || 'no arguments'}, got ${rest.length === 0 ? 'none' : rest.join(' ')}`,
      );
    }
    return rest;
  };
  const quotaFlags = Object.keys(QUOTA_FLAGS);
  const command = (name: string, c: Omit<Command, 'name'>): Parsed => ({
    help: false,
    globals,
    command: { name, ...c },
  });
  // `stats` is the one command without an action word.
  const key = group === 'stats' ? 'stats' : `${group} ${action ?? ''}`.trim();

  switch (key) {
    case 'apps list':
      allow();
      args();
      return command(key, { method: 'GET', path: '/v1/admin/apps', view: 'apps' });
    case 'apps get': {
      allow();
      const [app] = args('app');
      return command(key, { method: 'GET', path: `/v1/admin/apps/${seg(app!)}`, view: 'app' });
    }
    case 'apps create': {
      allow('description', 'topic', ...quotaFlags);
      const [app] = args('app');
      const q = quotas(values);
      return command(key, {
        method: 'POST',
        path: '/v1/admin/apps',
        body: {
          name: app,
          ...(values.description !== undefined ? { description: values.description } : {}),
          ...(values.topic ? { topics: [...new Set(values.topic)] } : {}),
          ...(Object.keys(q).length > 0 ? { quotas: q } : {}),
        },
        view: 'issued',
      });
    }
    case 'apps update': {
      allow('description');
      const [app] = args('app');
      if (values.description === undefined)
        throw new UsageError('apps update: nothing to change; give --description');
      return command(key, {
        method: 'PATCH',
        path: `/v1/admin/apps/${seg(app!)}`,
        body: { description: values.description },
        view: 'app',
      });
    }
    case 'apps delete': {
      allow();
      const [app] = args('app');
      return command(key, {
        method: 'DELETE',
        path: `/v1/admin/apps/${seg(app!)}`,
        view: 'deleted',
      });
    }
    case 'apps disable':
    case 'apps enable': {
      allow();
      const [app] = args('app');
      return command(key, {
        method: 'PATCH',
        path: `/v1/admin/apps/${seg(app!)}`,
        body: { disabled: action === 'disable' },
        view: 'app',
      });
    }
    case 'apps rotate-secret': {
      allow('grace-seconds');
      const [app] = args('app');
      const grace = number(values, 'grace-seconds', true);
      return command(key, {
        method: 'POST',
        path: `/v1/admin/apps/${seg(app!)}/signing-secret`,
        body: grace === undefined ? {} : { graceSeconds: grace },
        view: 'secret',
      });
    }
    case 'apps delivery': {
      allow(...DELIVERY_FLAGS);
      const [app] = args('app');
      return command(key, {
        method: 'PATCH',
        path: `/v1/admin/apps/${seg(app!)}`,
        body: { delivery: deliveryPatch(values) },
        view: 'app',
      });
    }
    case 'tokens rotate': {
      allow('grace-seconds');
      const [app] = args('app');
      const grace = number(values, 'grace-seconds', true);
      return command(key, {
        method: 'POST',
        path: `/v1/admin/apps/${seg(app!)}/tokens`,
        body: grace === undefined ? {} : { graceSeconds: grace },
        view: 'issued',
      });
    }
    case 'topics add': {
      allow('partitions', 'replication-factor');
      const [app, topic] = args('app', 'topic');
      const partitions = number(values, 'partitions', true);
      const replicationFactor = number(values, 'replication-factor', true);
      return command(key, {
        method: 'POST',
        path: `/v1/admin/apps/${seg(app!)}/topics`,
        body: {
          topic,
          ...(partitions !== undefined ? { partitions } : {}),
          ...(replicationFactor !== undefined ? { replicationFactor } : {}),
        },
        view: 'app',
      });
    }
    case 'topics remove': {
      allow();
      const [app, topic] = args('app', 'topic');
      return command(key, {
        method: 'DELETE',
        path: `/v1/admin/apps/${seg(app!)}/topics/${seg(topic!)}`,
        view: 'app',
      });
    }
    case 'quotas set': {
      allow(...quotaFlags);
      const [app] = args('app');
      return command(key, {
        method: 'PUT',
        path: `/v1/admin/apps/${seg(app!)}/quotas`,
        body: quotas(values),
        view: 'app',
      });
    }
    case 'slots list':
    case 'nodes list':
      allow();
      args();
      return command(key, {
        method: 'GET',
        path: '/v1/admin/cluster',
        view: group === 'slots' ? 'slots' : 'nodes',
      });
    case 'slots pin': {
      allow();
      const [slot, node] = args('slot', 'node');
      return command(key, {
        method: 'PUT',
        path: `/v1/admin/slots/${seg(slot!)}/pin`,
        body: { node },
        view: 'ack',
      });
    }
    case 'slots unpin': {
      allow();
      const [slot] = args('slot');
      return command(key, {
        method: 'DELETE',
        path: `/v1/admin/slots/${seg(slot!)}/pin`,
        view: 'ack',
      });
    }
    case 'nodes drain':
    case 'nodes undrain': {
      allow();
      const [id] = args('id');
      return command(key, {
        method: 'POST',
        path: `/v1/admin/nodes/${seg(id!)}/${action}`,
        view: 'ack',
      });
    }
    case 'messages get':
    case 'messages cancel': {
      allow();
      const [app, id] = args('app', 'id');
      return command(key, {
        method: action === 'get' ? 'GET' : 'DELETE',
        path: `/v1/admin/messages/${seg(app!)}/${seg(id!)}`,
        view: action === 'get' ? 'message' : 'cancelled',
      });
    }
    case 'messages attempts':
    case 'messages retry': {
      allow();
      const [app, id] = args('app', 'id');
      return command(key, {
        method: action === 'attempts' ? 'GET' : 'POST',
        path: `/v1/admin/messages/${seg(app!)}/${seg(id!)}/${action}`,
        view: action === 'attempts' ? 'attempts' : 'message',
      });
    }
    case 'messages schedule': {
      allow(...SCHEDULE_FLAGS);
      args();
      const appToken = values['app-token'] ?? env.HOURGLASS_APP_TOKEN;
      if (appToken === undefined || appToken === '')
        throw new UsageError(
          'messages schedule: give the app token (--app-token or $HOURGLASS_APP_TOKEN); the admin token cannot publish',
        );
      return command(key, {
        method: 'POST',
        path: '/v1/messages',
        body: scheduleBody(values),
        appToken,
        view: 'message',
      });
    }
    case 'stats':
      allow();
      if (action !== undefined) throw new UsageError('stats takes no arguments');
      return command(key, { method: 'GET', path: '/v1/admin/stats', view: 'stats' });
    default:
      throw new UsageError(`unknown command "${key}"; run "hourglass --help"`);
  }
}
