/**
 * Taking over slots. Runs as three statements in one READ COMMITTED transaction (the caller sends
 * BEGIN/COMMIT), and the split matters:
 *
 * 1. {@link bumpEpochs} locks the slots' `slot_epochs` rows FOR UPDATE in ascending slot order (the
 *    order inserts and claims take their FOR SHARE locks in, so no deadlock) and raises the epochs.
 *    It waits for every in-flight insert, claim, markDelivered and releaseClaims of these slots,
 *    and for every delivery made under the epoch lock (withEpochLock); from its commit on, any of
 *    them carrying the old epoch matches nothing. The check on `owner_revision` runs on the
 *    locked, latest version of the row: an acquisition whose coordinator revision is older than
 *    the one that last raised the epoch belongs to a replaced owner and changes nothing.
 * 2. {@link resetClaimsAndHints} must be a separate statement: it takes a fresh snapshot after the
 *    locks were granted, so it sees claims that committed while step 1 waited. (In the same
 *    statement, e.g. as a CTE, it would use the snapshot from before the wait and leave those rows
 *    in `delivering` forever.) No new claim can commit in between: claims need our locked rows.
 *    Hints are dropped because the load that follows the takeover sees their messages; a hint
 *    committed after this point was written by an insert that saw the new epoch, i.e. it is for us.
 */
import type { Queryable } from './db';

export interface BumpedSlot {
  slot: number;
  /** The new epoch; null when the slot was refused (a newer owner raised it). */
  epoch: string | null;
  owner_revision: string;
}

/** Every requested slot that exists, with its new epoch or null when refused. */
export async function bumpEpochs(
  db: Queryable,
  slots: readonly number[],
  revision: number,
): Promise<BumpedSlot[]> {
  const result = await db.query<BumpedSlot>(
    `WITH locked AS (
       SELECT slot, owner_revision FROM slot_epochs WHERE slot = ANY($1::int[]) ORDER BY slot FOR UPDATE
     ),
     bumped AS (
       UPDATE slot_epochs s SET epoch = GREATEST(s.epoch + 1, $2::bigint), owner_revision = $2::bigint
       FROM locked l
       WHERE s.slot = l.slot AND l.owner_revision <= $2::bigint
       RETURNING s.slot, s.epoch
     )
     SELECT l.slot, b.epoch, l.owner_revision FROM locked l LEFT JOIN bumped b ON b.slot = l.slot`,
    [slots, revision],
  );
  return result.rows;
}

export async function clearOwnerRevisionsAbove(db: Queryable, revision: number): Promise<number> {
  const result = await db.query(
    'UPDATE slot_epochs SET owner_revision = 0 WHERE owner_revision > $1::bigint',
    [revision],
  );
  return result.rowCount ?? 0;
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
