/** Human-readable output of each view. Pure: the server's JSON in, text out. */
import type { View } from './args';
import { debouncedLine } from './debounce';
import { renderRecord, renderTable } from './table';
import { bulkCancelText, messagesText } from './search-render';

type Json = Record<string, unknown>;

interface RetryJson {
  strategy?: string;
  initialDelayMs?: number;
  maxDelayMs?: number;
  maxAttempts?: number;
  jitter?: boolean;
}

interface DeliveryJson {
  callbackHosts: string[] | null;
  deadLetterTopic: string | null;
  alerts: { afterAttempts: number; url: string | null; topic: string | null } | null;
  retry: RetryJson | null;
  signingSecretCreatedAt: string | null;
  previousSecretExpiresAt: string | null;
}

interface AppJson {
  name: string;
  description: string;
  createdAt: string;
  disabled: boolean;
  topics: string[];
  quotas: Record<string, number | null>;
  tokens: Array<{ createdAt: string; expiresAt: string | null }>;
  /** Absent from nodes older than callbacks. */
  delivery?: DeliveryJson;
}

interface TargetJson {
  index: number;
  type: string;
  topic?: string;
  key?: string | null;
  url?: string;
  method?: string;
  name?: string;
  state: string;
  attempts: number;
  lastError?: string;
  lastStatus?: number;
  nextAttemptAt?: string;
  finishedAt?: string;
}

interface AttemptJson {
  target: number;
  type: string;
  attempt: number;
  at: string;
  durationMs: number;
  status?: number;
  error?: string;
  response?: string;
}

function quotaText(quotas: Record<string, number | null> | undefined): string {
  const set = Object.entries(quotas ?? {}).filter(([, value]) => value !== null);
  return set.length === 0 ? '-' : set.map(([key, value]) => `${key}=${value}`).join(' ');
}

/** e.g. `exponential 10000-86400000 ms, 10 attempts, jitter`. */
export function retryText(retry: RetryJson | null | undefined): string {
  if (!retry) return '-';
  const parts = [
    `${retry.strategy ?? 'default'} ${retry.initialDelayMs ?? '?'}-${retry.maxDelayMs ?? '?'} ms`,
    `${retry.maxAttempts ?? '?'} attempts`,
  ];
  if (retry.jitter !== undefined) parts.push(retry.jitter ? 'jitter' : 'no jitter');
  return parts.join(', ');
}

function alertsText(alerts: DeliveryJson['alerts']): string {
  if (!alerts) return '-';
  const to = [alerts.url, alerts.topic ? `topic ${alerts.topic}` : null].filter(Boolean);
  return `after ${alerts.afterAttempts} attempts${to.length > 0 ? ` to ${to.join(' and ')}` : ''}`;
}

function appRecord(app: AppJson): string {
  const delivery = app.delivery;
  return renderRecord([
    ['name', app.name],
    ['description', app.description || '-'],
    ['created', app.createdAt],
    ['disabled', app.disabled],
    ['topics', app.topics],
    ['quotas', quotaText(app.quotas)],
    [
      'tokens',
      app.tokens
        .map((token) =>
          token.expiresAt
            ? `issued ${token.createdAt} (expires ${token.expiresAt})`
            : `issued ${token.createdAt}`,
        )
        .join('; ') || '-',
    ],
    ...(delivery
      ? ([
          ['callback hosts', delivery.callbackHosts ?? 'any public host'],
          ['dead letters', delivery.deadLetterTopic],
          ['alerts', alertsText(delivery.alerts)],
          ['default retry', delivery.retry ? retryText(delivery.retry) : 'the node default'],
          [
            'signing secret',
            delivery.signingSecretCreatedAt
              ? `created ${delivery.signingSecretCreatedAt}${
                  delivery.previousSecretExpiresAt
                    ? ` (previous one still signs until ${delivery.previousSecretExpiresAt})`
                    : ''
                }`
              : '-',
          ],
        ] as Array<[string, unknown]>)
      : []),
  ]);
}

function destination(target: TargetJson): string {
  if (target.type === 'http') return `${target.method ?? 'POST'} ${target.url ?? '?'}`;
  return target.key ? `${target.topic ?? '?'} (key ${target.key})` : (target.topic ?? '?');
}

/** The message as `key: value` lines, then its targets as a table. */
export function messageText(json: Json): string {
  const { targets, retry, ...fields } = json as Json & {
    targets?: TargetJson[];
    retry?: RetryJson;
  };
  const entries: Array<[string, unknown]> = Object.entries(fields);
  if (retry !== undefined) entries.push(['retry', retryText(retry)]);
  let out = renderRecord(entries);
  if (Array.isArray(targets) && targets.length > 0) {
    out += '\ntargets\n';
    out += renderTable(targets, [
      { header: '#', value: (t) => t.index, right: true },
      { header: 'TYPE', value: (t) => t.type },
      { header: 'DESTINATION', value: destination },
      { header: 'NAME', value: (t) => t.name },
      { header: 'STATE', value: (t) => t.state },
      { header: 'ATTEMPTS', value: (t) => t.attempts, right: true },
      { header: 'STATUS', value: (t) => t.lastStatus, right: true },
      { header: 'NEXT ATTEMPT', value: (t) => t.nextAttemptAt },
      { header: 'FINISHED', value: (t) => t.finishedAt },
      { header: 'LAST ERROR', value: (t) => t.lastError },
    ]);
  }
  return out;
}

/** A response body's start, on one line: attempts keep up to 1 KiB of it. */
function excerpt(text: string | undefined, length = 60): string | undefined {
  if (text === undefined) return undefined;
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > length ? `${line.slice(0, length - 1)}…` : line;
}

export function render(view: View, body: unknown): string {
  const json = (body ?? {}) as Json;
  switch (view) {
    case 'apps':
      return renderTable((json.apps as AppJson[]) ?? [], [
        { header: 'NAME', value: (a) => a.name },
        { header: 'DISABLED', value: (a) => (a.disabled ? 'yes' : 'no') },
        { header: 'TOPICS', value: (a) => a.topics },
        { header: 'QUOTAS', value: (a) => quotaText(a.quotas) },
        { header: 'TOKENS', value: (a) => a.tokens.length, right: true },
        { header: 'DESCRIPTION', value: (a) => a.description || '-' },
      ]);
    case 'app':
      return appRecord(json as unknown as AppJson);
    case 'issued':
      return (
        appRecord(json.app as AppJson) +
        `\ntoken: ${String(json.token)}\n` +
        'This token is shown only once; only its hash is stored. Keep it now.\n' +
        (typeof json.signingSecret === 'string'
          ? `signing secret: ${json.signingSecret}\n` +
            'Callbacks are signed with it (webhook-signature); it is shown only once. Keep it now.\n'
          : '') +
        (typeof json.graceSeconds === 'number'
          ? `Earlier tokens of the app keep working for ${json.graceSeconds} s.\n`
          : '')
      );
    case 'secret':
      return (
        appRecord(json.app as AppJson) +
        `\nsigning secret: ${String(json.signingSecret)}\n` +
        'This secret is shown only once. Give it to the receivers now.\n' +
        (typeof json.graceSeconds === 'number' && json.graceSeconds > 0
          ? `For ${json.graceSeconds} s callbacks carry two signatures, with the old secret and this one.\n`
          : 'The old secret no longer signs.\n')
      );
    case 'deleted':
      return `deleted app ${String(json.name)} (its scheduled messages are still delivered)\n`;
    case 'message':
      return debouncedLine(json) + messageText(json);
    case 'attempts': {
      const attempts = (json.attempts ?? []) as AttemptJson[];
      if (attempts.length === 0) return 'no attempts (Kafka-only messages log none)\n';
      return renderTable(attempts, [
        { header: 'TARGET', value: (a) => a.target, right: true },
        { header: 'TYPE', value: (a) => a.type },
        { header: 'ATTEMPT', value: (a) => a.attempt, right: true },
        { header: 'AT', value: (a) => a.at },
        { header: 'MS', value: (a) => a.durationMs, right: true },
        { header: 'STATUS', value: (a) => a.status, right: true },
        { header: 'ERROR', value: (a) => a.error },
        { header: 'RESPONSE', value: (a) => excerpt(a.response) },
      ]);
    }
    case 'cancelled':
      return `cancelled ${String(json.id)}\n`;
    case 'messages':
      return messagesText(json);
    case 'bulk-cancelled':
      return bulkCancelText(json);
    case 'stats': {
      const byState = (json.byState ?? {}) as Record<string, number>;
      const byApp = (json.byApp ?? []) as Array<{ app: string; byState: Record<string, number> }>;
      const pending = (json.pendingByApp ?? []) as Array<{
        app: string;
        buckets: Record<string, number>;
      }>;
      const states = Object.keys(byState);
      const labels = ((json.buckets ?? []) as Array<{ label: string }>).map((b) => b.label);
      let out = `apps: ${String(json.apps)}\n\nmessages by state\n`;
      out += renderTable(
        [{ app: 'TOTAL', byState }, ...byApp],
        [
          { header: 'APP', value: (r) => r.app },
          ...states.map((state) => ({
            header: state.toUpperCase(),
            value: (r: { byState: Record<string, number> }) => r.byState[state] ?? 0,
            right: true,
          })),
        ],
      );
      out += '\npending by due time\n';
      out += renderTable(pending, [
        { header: 'APP', value: (r) => r.app },
        ...labels.map((label) => ({
          header: label.toUpperCase(),
          value: (r: { buckets: Record<string, number> }) => r.buckets[label] ?? 0,
          right: true,
        })),
      ]);
      return out;
    }
    case 'slots':
      return renderTable(
        (json.slots ?? []) as Array<{
          slot: number;
          owner: string | null;
          epoch: number | null;
          pinnedTo?: string;
        }>,
        [
          { header: 'SLOT', value: (s) => s.slot, right: true },
          { header: 'OWNER', value: (s) => s.owner },
          { header: 'EPOCH', value: (s) => s.epoch, right: true },
          { header: 'PINNED', value: (s) => s.pinnedTo },
        ],
      );
    case 'nodes':
      return renderTable(
        (json.nodes ?? []) as Array<{
          id: string;
          httpUrl: string;
          drained: boolean;
          slots: number[];
          startedAt: string;
        }>,
        [
          { header: 'NODE', value: (n) => n.id },
          { header: 'HTTP', value: (n) => n.httpUrl },
          { header: 'DRAINED', value: (n) => (n.drained ? 'yes' : 'no') },
          { header: 'SLOTS', value: (n) => n.slots.length, right: true },
          { header: 'STARTED', value: (n) => n.startedAt },
        ],
      );
    case 'ack':
      return renderRecord(Object.entries(json));
  }
}
