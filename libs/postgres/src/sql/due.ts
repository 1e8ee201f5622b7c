/**
 * Loading the wheel: scheduled messages of a set of slots due in [from, until), in
 * (deliver_at, seq) order, keyset-paginated from the last item of the previous page. Only the
 * three numbers the wheel holds are read (slot, seq, deliver_at).
 *
 * Served by the partial index `messages_due_idx (slot, deliver_at) WHERE state = 0`: an index scan
 * with `slot = ANY(…)` and the deliver_at range as index conditions, then a top-N sort of the
 * (small: one horizon's worth) result. The keyset condition is a row comparison, a filter on the
 * rows the range already bounds.
 */
import type { DueRow } from '../rows';
import type { Queryable } from './db';

/** The statement text; `withCursor` adds the keyset condition on $5, $6. Exported for EXPLAIN in tests. */
export function dueQuery(withCursor: boolean): string {
  const cursor = withCursor ? 'AND (deliver_at, seq) > ($5::bigint, $6::bigint)' : '';
  return `SELECT slot, seq, deliver_at FROM messages
    WHERE slot = ANY($1::int[]) AND state = 0 AND deliver_at >= $2::bigint AND deliver_at < $3::bigint ${cursor}
    ORDER BY deliver_at, seq
    LIMIT $4`;
}

export async function selectDue(
  db: Queryable,
  slots: readonly number[],
  fromMs: number,
  untilMs: number,
  limit: number,
  after: { deliverAtMs: number; seq: number } | undefined,
): Promise<DueRow[]> {
  const values: unknown[] = [slots, fromMs, untilMs, limit];
  if (after !== undefined) values.push(after.deliverAtMs, after.seq);
  const result = await db.query<DueRow>(dueQuery(after !== undefined), values);
  return result.rows;
}
