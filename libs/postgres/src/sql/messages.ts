/** Reading and cancelling single messages. */
import type { MessageRow } from '../rows';
import { MESSAGE_COLUMNS } from '../rows';
import type { Queryable } from './db';

export async function selectMessage(
  db: Queryable,
  app: string,
  id: string,
): Promise<MessageRow | null> {
  const result = await db.query<MessageRow>({
    name: 'hourglass_select_message',
    text: `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE app = $1 AND id = $2`,
    values: [app, id],
  });
  return result.rows[0] ?? null;
}

/**
 * Cancel, not fenced: any node may cancel any message. The only guard is `state = 0`, the same
 * condition the firing side's claim uses; both are UPDATEs of the same row, so the row lock
 * orders them and the loser re-checks `state = 0` against the winner's committed version
 * (READ COMMITTED re-evaluation): exactly one of cancel and claim wins.
 *
 * One statement answers both outcomes: the cancelled row, or else the row as it is (`cancelled`
 * false) for the caller to say why it was refused, or no row when the id does not exist. The
 * fallback SELECT sees the statement's snapshot, so when a concurrent claim won it can still show
 * `state = 0`; the caller retries then (see PgMessageStore.cancel).
 */
const CANCEL = `
WITH cancelled AS (
  UPDATE messages SET state = 3, finished_at = $3
  WHERE app = $1 AND id = $2 AND state = 0
  RETURNING seq, ${MESSAGE_COLUMNS}
)
SELECT true AS cancelled, * FROM cancelled
UNION ALL
SELECT false AS cancelled, seq, ${MESSAGE_COLUMNS} FROM messages
WHERE app = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM cancelled)
`;

/** A row as {@link cancelMessage} returns it; `seq` (int8) arrives as a string. */
export type CancelRow = MessageRow & { cancelled: boolean; seq: string };

export async function cancelMessage(
  db: Queryable,
  app: string,
  id: string,
  nowMs: number,
): Promise<CancelRow | null> {
  const result = await db.query<CancelRow>({
    name: 'hourglass_cancel',
    text: CANCEL,
    values: [app, id, nowMs],
  });
  return result.rows[0] ?? null;
}
