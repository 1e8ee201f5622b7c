/**
 * Reading and holding slot epochs outside of a takeover.
 *
 * - {@link selectEpochs}: what the engine asks when a claim came back empty for a whole slot, to
 *   tell "another node raised the epoch" (the slot is lost) from "nothing was due".
 * - {@link lockEpochs}: the shared lock of withEpochLock. It is the same FOR SHARE lock claims and
 *   inserts take (ascending slot order, so no deadlock with takeovers), held for the length of a
 *   transaction that delivers: a takeover's FOR UPDATE waits for it. Under READ COMMITTED the
 *   locking read re-checks `epoch = lease` on the latest committed row version, so a slot whose
 *   epoch was raised before the lock was granted is not returned.
 * - {@link selectDelivering}: rows claimed under the caller's leases, for the sweep that finds
 *   claims nothing in the engine accounts for any more.
 */
import type { MessageRef } from '@hourglass/core';
import { leaseArrays, seqNumber } from '../rows';
import type { Queryable } from './db';

export async function selectEpochs(
  db: Queryable,
  slots: readonly number[],
): Promise<Map<number, number>> {
  const result = await db.query<{ slot: number; epoch: string }>(
    'SELECT slot, epoch FROM slot_epochs WHERE slot = ANY($1::int[])',
    [slots],
  );
  return new Map(result.rows.map((row) => [row.slot, Number(row.epoch)]));
}

export async function lockEpochs(
  db: Queryable,
  leases: ReadonlyMap<number, number>,
): Promise<Set<number>> {
  const [slots, epochs] = leaseArrays(leases);
  const result = await db.query<{ slot: number }>(
    `SELECT e.slot FROM slot_epochs e
     JOIN unnest($1::int[], $2::bigint[]) AS l(slot, epoch) ON l.slot = e.slot
     WHERE e.epoch = l.epoch
     ORDER BY e.slot
     FOR SHARE OF e`,
    [slots, epochs],
  );
  return new Set(result.rows.map((row) => row.slot));
}

export async function selectDelivering(
  db: Queryable,
  leases: ReadonlyMap<number, number>,
  limit: number,
): Promise<MessageRef[]> {
  const [slots, epochs] = leaseArrays(leases);
  const result = await db.query<{ seq: string; slot: number }>(
    `SELECT m.seq, m.slot FROM messages m
     JOIN unnest($1::int[], $2::bigint[]) AS l(slot, epoch) ON l.slot = m.slot
     WHERE m.state = 1 AND m.claimed_epoch = l.epoch
     LIMIT $3`,
    [slots, epochs, limit],
  );
  return result.rows.map((row) => ({ seq: seqNumber(row.seq), slot: row.slot }));
}
