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

/** One admin API call, described: what the CLI sends and how it prints the answer. */
export interface Command {
  readonly name: string;
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly body?: Record<string, unknown>;
  /** How to print the response for humans. */
  readonly view: View;
}

export type View =
  | 'apps'
  | 'app'
  | 'issued'
  | 'deleted'
  | 'message'
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
} as const;

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
  tokens rotate <app> [--grace-seconds N]       (default 3600: old tokens keep working that long)
  topics add <app> <topic> [--partitions N] [--replication-factor N]
  topics remove <app> <topic>
  quotas set <app> [quota flags]                 (replaces all quotas; a flag left out means no limit)
  slots list | slots pin <slot> <node> | slots unpin <slot>
  nodes list | nodes drain <id> | nodes undrain <id>
  messages get <app> <id> | messages cancel <app> <id>
  stats

quota flags: --rate N (messages/s) --burst N --max-pending N --max-payload-bytes N --max-delay-ms N

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
    case 'stats':
      allow();
      if (action !== undefined) throw new UsageError('stats takes no arguments');
      return command(key, { method: 'GET', path: '/v1/admin/stats', view: 'stats' });
    default:
      throw new UsageError(`unknown command "${key}"; run "hourglass --help"`);
  }
}
