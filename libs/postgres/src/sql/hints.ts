/**
 * Wheel hints: near-due messages committed by a node that does not own their slot (see insert.ts).
 * A hint row is already a wheel item: slot, seq and due time.
 */
import type { DueRow } from '../rows';
import type { Queryable } from './db';

/** The hints of these slots, at most `limit`; they stay until {@link deleteHintRows}. */
export async function selectHints(
  db: Queryable,
  slots: readonly number[],
  limit: number,
): Promise<DueRow[]> {
  const result = await db.query<DueRow>(
    'SELECT slot, seq, deliver_at FROM wheel_hints WHERE slot = ANY($1::int[]) LIMIT $2',
    [slots, limit],
  );
  return result.rows;
}

/**
 * Deletes hints once their messages are in the wheel. Read, wheel, then delete: if this delete
 * commits and its reply is lost, the hints are gone but already wheeled; if it fails, they are
 * read again and wheeled twice, which the claim makes harmless.
 *
 * A hint is matched by its due time too: one message can have several hints (an insert's, then a
 * change's with the new due time: PATCH, a trailing debounce), and a drain that read only the
 * first must not delete the second, or the new due time would be left to the sweep.
 */
export async function deleteHintRows(
  db: Queryable,
  hints: readonly { slot: number; seq: number; dueMs: number }[],
): Promise<void> {
  await db.query(
    `DELETE FROM wheel_hints h
     USING unnest($1::int[], $2::bigint[], $3::bigint[]) AS d(slot, seq, deliver_at)
     WHERE h.slot = d.slot AND h.seq = d.seq AND h.deliver_at = d.deliver_at`,
    [hints.map((h) => h.slot), hints.map((h) => h.seq), hints.map((h) => h.dueMs)],
  );
}
