/** Human-readable output of `messages list` and the bulk `messages cancel`. Pure. */
import { renderRecord, renderTable } from './table';

type Json = Record<string, unknown>;

interface ListedMessage {
  app: string;
  id: string;
  state: string;
  deliverAt: string;
  topic: string | null;
  key: string | null;
  attempts: number;
  targets?: Array<{ type: string }>;
}

/** One row per message, then how to go on when the listing is not over. */
export function messagesText(json: Json): string {
  const messages = (json.messages ?? []) as ListedMessage[];
  const next = typeof json.nextCursor === 'string' ? json.nextCursor : null;
  let out =
    messages.length === 0
      ? 'no messages\n'
      : renderTable(messages, [
          { header: 'APP', value: (m) => m.app },
          { header: 'ID', value: (m) => m.id },
          { header: 'STATE', value: (m) => m.state },
          { header: 'DUE', value: (m) => m.deliverAt },
          { header: 'TOPIC', value: (m) => m.topic },
          { header: 'KEY', value: (m) => m.key },
          { header: 'TARGETS', value: (m) => (m.targets ?? []).map((t) => t.type) },
          { header: 'ATTEMPTS', value: (m) => m.attempts, right: true },
        ]);
  if (next !== null)
    out += `more: add --cursor ${next} for the next page, or --all for every page\n`;
  return out;
}

/** The counts of a bulk cancel (by ids or by filter). */
export function bulkCancelText(json: Json): string {
  if (typeof json.notCancellable === 'number')
    return renderRecord([
      ['cancelled', json.cancelled],
      ['not cancellable (being delivered)', json.notCancellable],
    ]);
  return renderRecord([
    ['cancelled', json.cancelled],
    ['already finished', json.alreadyFinished],
    ['being delivered', json.deliveryInProgress],
    ['not found', json.notFound],
  ]);
}
