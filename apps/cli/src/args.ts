/**
 * Command-line parsing: argv → a {@link Command}, or a {@link UsageError} (exit code 2). Pure, so
 * every command's parsing is unit-tested without a server.
 */
import { parseArgs } from 'node:util';
import {
  DELIVERY_FLAGS,
  OPTIONS,
  QUOTA_FLAGS,
  SCHEDULE_FLAGS,
  deliveryPatch,
  number,
  quotas,
  scheduleBody,
} from './flags';
import type { Values } from './flags';
import { DEBOUNCE_FLAGS, debounceField } from './debounce';
import { UPDATE_FLAGS, updateRequest } from './update';
import type { Follow } from './search';
import { BULK_CANCEL_FLAGS, LIST_FLAGS, bulkCancelCall, isBulkCancel, listCall } from './search';
import { DEFAULT_ADMIN_TOKEN, DEFAULT_URL, UsageError } from './usage';

export { DEFAULT_ADMIN_TOKEN, DEFAULT_URL, USAGE, UsageError } from './usage';

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
   * The token to send instead of the admin token: an app token, for the commands that are not
   * admin calls (`messages schedule` and `messages update`: the admin token cannot publish).
   */
  readonly appToken?: string;
  /** Request headers besides authorization and content-type (`If-Match`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** How to print the response for humans. */
  readonly view: View;
  /** Calls that may continue with another (`messages list --all`, a filter cancel): ./search.ts. */
  readonly follow?: Follow;
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
  | 'messages'
  | 'bulk-cancelled'
  | 'slots'
  | 'nodes'
  | 'ack';

export type Parsed =
  | { readonly help: true }
  | { readonly help: false; readonly globals: Globals; readonly command: Command };

const seg = encodeURIComponent;

function withDebounce(
  body: Record<string, unknown>,
  debounce: Record<string, unknown> | undefined,
): Record<string, unknown> {
  return debounce === undefined ? body : { ...body, debounce };
}

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
    case 'messages list':
      allow(...LIST_FLAGS);
      args();
      return command(key, { ...listCall(values), view: 'messages' });
    case 'messages cancel':
    case 'messages get': {
      if (action === 'cancel' && isBulkCancel(values)) {
        allow(...BULK_CANCEL_FLAGS);
        return command(key, { ...bulkCancelCall(values, rest, env), view: 'bulk-cancelled' });
      }
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
      allow(...SCHEDULE_FLAGS, ...DEBOUNCE_FLAGS);
      args();
      const appToken = values['app-token'] ?? env.HOURGLASS_APP_TOKEN;
      if (appToken === undefined || appToken === '')
        throw new UsageError(
          'messages schedule: give the app token (--app-token or $HOURGLASS_APP_TOKEN); the admin token cannot publish',
        );
      return command(key, {
        method: 'POST',
        path: '/v1/messages',
        body: withDebounce(scheduleBody(values), debounceField(values)),
        appToken,
        view: 'message',
      });
    }
    case 'messages update': {
      allow(...UPDATE_FLAGS);
      const [id] = args('id');
      return command(key, { method: 'PATCH', ...updateRequest(values, id!, env), view: 'message' });
    }
    case 'stats':
      allow();
      if (action !== undefined) throw new UsageError('stats takes no arguments');
      return command(key, { method: 'GET', path: '/v1/admin/stats', view: 'stats' });
    default:
      throw new UsageError(`unknown command "${key}"; run "hourglass --help"`);
  }
}
