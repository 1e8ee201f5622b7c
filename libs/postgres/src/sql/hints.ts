/**
 * Wheel hints: near-due messages committed by a node that does not own their slot (see insert.ts).
 * A hint row is already a wheel item: slot, seq and due time.
 */
import type { DueRow } from '../rows';
import type { Queryable } from './db';

export async function deleteHints(db: Queryable, slots: readonly number[]): Promise<DueRow[]> {
  const result = await db.query<DueRow>(
    'DELETE FROM wheel_hints WHERE slot = ANY($1::int[]) RETURNING slot, seq, deliver_at',
    [slots],
  );
  return result.rows;
}
