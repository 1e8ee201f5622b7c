/**
 * `hourglass messages update <id>`: PATCH /v1/messages/{id} as the app, with the schedule flags
 * naming what to change (each one given replaces the message's; see libs/core/src/message-patch.ts)
 * and `--if-version N` as `If-Match: "N"`. Pure, like the rest of the parsing.
 */
import type { Values } from './flags';
import { SCHEDULE_FLAGS, messageFields, number } from './flags';
import { UsageError } from './usage';

const NAME = 'messages update';

/** Every schedule flag but `--id` (the id is the argument and never changes), and `--if-version`. */
export const UPDATE_FLAGS: readonly string[] = [
  ...SCHEDULE_FLAGS.filter((flag) => flag !== 'id'),
  'if-version',
];

/** What `messages update` sends. */
export interface UpdateRequest {
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly appToken: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export function updateRequest(values: Values, id: string, env: NodeJS.ProcessEnv): UpdateRequest {
  const appToken = values['app-token'] ?? env.HOURGLASS_APP_TOKEN;
  if (appToken === undefined || appToken === '')
    throw new UsageError(
      `${NAME}: give the app token (--app-token or $HOURGLASS_APP_TOKEN); the admin token cannot change messages`,
    );
  const body = messageFields(values, NAME);
  if (Object.keys(body).length === 0)
    throw new UsageError(
      `${NAME}: nothing to change; give --deliver-at, --delay-ms, --payload, --header, --key, --topic, --callback, retry flags or --content-type`,
    );
  const version = number(values, 'if-version', true);
  if (version === 0)
    throw new UsageError('--if-version expects a version as the message shows it (1 or more)');
  return {
    path: `/v1/messages/${encodeURIComponent(id)}`,
    body,
    appToken,
    // The ETag of a version is its quoted number.
    ...(version !== undefined ? { headers: { 'if-match': `"${version}"` } } : {}),
  };
}
