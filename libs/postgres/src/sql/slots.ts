/**
 * Taking over slots. Runs as three statements in one READ COMMITTED transaction (the caller sends
 * BEGIN/COMMIT), and the split matters:
 *
 * 1. {@link bumpEpochs} locks the slots' `slot_epochs` rows FOR UPDATE in ascending slot order (the
 *    order inserts and claims take their FOR SHARE locks in, so no deadlock) and raises the epochs.
 *    It waits for every in-flight insert, claim, markDelivered and releaseClaims of these slots;
 *    from its commit on, any of them carrying the old epoch matches nothing.
 * 2. {@link resetClaimsAndHints} must be a separate statement: it takes a fresh snapshot after the
 *    locks were granted, so it sees claims that committed while step 1 waited. (In the same
 *    statement, e.g. as a CTE, it would use the snapshot from before the wait and leave those rows
 *    in `delivering` forever.) No new claim can commit in between: claims need our locked rows.
 *    Hints are dropped because the load that follows the takeover sees their messages; a hint
 *    committed after this point was written by an insert that saw the new epoch, i.e. it is for us.
 */
import type { Queryable } from './db';

export async function bumpEpochs(
  db: Queryable,
  slots: readonly number[],
  minEpoch: number,
): Promise<{ slot: number; epoch: string }[]> {
  const result = await db.query<{ slot: number; epoch: string }>(
    `UPDATE slot_epochs s SET epoch = GREATEST(s.epoch + 1, $2::bigint)
     FROM (SELECT slot FROM slot_epochs WHERE slot = ANY($1::int[]) ORDER BY slot FOR UPDATE) l
     WHERE s.slot = l.slot
     RETURNING s.slot, s.epoch`,
    [slots, minEpoch],
  );
  return result.rows;
}

export async function resetClaimsAndHints(db: Queryable, slots: readonly number[]): Promise<void> {
  await db.query(
    `WITH reset AS (
       UPDATE messages SET state = 0, claimed_epoch = NULL
       WHERE slot = ANY($1::int[]) AND state = 1
     )
     DELETE FROM wheel_hints WHERE slot = ANY($1::int[])`,
    [slots],
  );
}
