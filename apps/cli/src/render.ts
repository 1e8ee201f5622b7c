/** Human-readable output of each view. Pure: the server's JSON in, text out. */
import type { View } from './args';
import { renderRecord, renderTable } from './table';

type Json = Record<string, unknown>;

interface AppJson {
  name: string;
  description: string;
  createdAt: string;
  disabled: boolean;
  topics: string[];
  quotas: Record<string, number | null>;
  tokens: Array<{ createdAt: string; expiresAt: string | null }>;
}

function quotaText(quotas: Record<string, number | null> | undefined): string {
  const set = Object.entries(quotas ?? {}).filter(([, value]) => value !== null);
  return set.length === 0 ? '-' : set.map(([key, value]) => `${key}=${value}`).join(' ');
}

function appRecord(app: AppJson): string {
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
  ]);
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
        (typeof json.graceSeconds === 'number'
          ? `Earlier tokens of the app keep working for ${json.graceSeconds} s.\n`
          : '')
      );
    case 'deleted':
      return `deleted app ${String(json.name)} (its scheduled messages are still delivered)\n`;
    case 'message':
      return renderRecord(Object.entries(json));
    case 'cancelled':
      return `cancelled ${String(json.id)}\n`;
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
