/**
 * The firing path: claim (scheduled → delivering), markDelivered (→ delivered) and releaseClaims
 * (→ scheduled or failed), each ONE statement, each fenced by the slot's epoch.
 *
 * ## The fence
 *
 * Each statement starts with the CTE `fence`: the `slot_epochs` rows of the refs' slots whose
 * epoch equals the caller's lease, locked FOR SHARE in ascending slot order. A message row is only
 * updated when joined to its slot's `fence` row, so its slot lock was granted first. Then:
 * - If a takeover (`acquireSlots`: UPDATE slot_epochs … FOR UPDATE) committed before our lock was
 *   granted, the locking read re-checks `epoch = lease` against the latest committed version
 *   (READ COMMITTED follows the update chain) and drops the slot: nothing of it is touched.
 * - If it comes after, it waits for our commit; its reset statement then runs with a snapshot
 *   taken after our commit, so it sees our `delivering` rows and puts them back to `scheduled`
 *   for the new owner (see slots.ts).
 * A plain `UPDATE … FROM slot_epochs WHERE epoch = lease` would not be enough: the joined
 * slot_epochs row would be read from the statement snapshot without a lock, so a takeover could
 * commit its bump and its reset between our read and our commit, and our claim would survive
 * under the new owner.
 *
 * Deadlock freedom: takeovers and fenced writes both lock slot_epochs rows in ascending order, and
 * a fenced write locks a message only after its slot; a takeover locks messages only of slots it
 * holds exclusively, which no fenced write of those slots can be inside.
 *
 * The message-level guard (`state = 0`, or our own earlier claim, for claim; `state = 1 AND claimed_epoch = lease` for the
 * others) is re-checked under the row lock, which is what orders claim against cancel.
 */
import type { MessageRef } from '@hourglass/core';
import { leaseArrays } from '../rows';
import type { Queryable } from './db';

const REFS_AND_FENCE = `
WITH refs AS (
  SELECT r.app COLLATE "C" AS app, r.id COLLATE "C" AS id, r.slot
  FROM unnest($1::text[], $2::text[], $3::int[]) AS r(app, id, slot)
),
fence AS MATERIALIZED (
  SELECT e.slot, e.epoch
  FROM slot_epochs e
  JOIN unnest($4::int[], $5::bigint[]) AS l(slot, epoch) ON l.slot = e.slot
  WHERE e.slot IN (SELECT slot FROM refs) AND e.epoch = l.epoch
  ORDER BY e.slot
  FOR SHARE OF e
),
-- The refs of fenced slots. Joining messages to this (and not to fence by slot) leaves the planner
-- one sensible path, a primary-key probe per ref: fence's row estimate is poor (often 1), and
-- joined by slot it would scan every due message of the slots through messages_due_idx, which
-- after an outage is the whole backlog.
targets AS MATERIALIZED (
  SELECT r.app, r.id, r.slot, f.epoch FROM refs r JOIN fence f ON f.slot = r.slot
)`;

const CLAIM = `${REFS_AND_FENCE}
UPDATE messages m
SET state = 1, claimed_epoch = t.epoch, attempts = m.attempts + 1
FROM targets t
WHERE m.app = t.app AND m.id = t.id AND m.slot = t.slot
  -- A row still delivering under this very epoch is our own claim whose release failed (Postgres
  -- hiccup after a Kafka error); re-taking it is what lets the engine retry it. Another owner's
  -- claims carry another epoch and are reset by acquireSlots instead.
  -- \`+ 0\` hides state and deliver_at from index matching, so the primary key is the only index
  -- that fits. Otherwise, with the few-rows estimates of a freshly filled table, the planner
  -- probed messages_app_pending_idx (app, deliver_at) per ref, filtering the app's whole due
  -- backlog every time, or bitmap-scanned the partial indexes (scripts/bench: 1000 refs over 30k
  -- pending rows took 190–240 ms, growing with the backlog up to the statement timeout).
  AND (m.state + 0 = 0 OR (m.state + 0 = 1 AND m.claimed_epoch = t.epoch)) AND m.deliver_at + 0 <= $6::bigint
RETURNING m.app, m.id, m.slot, m.topic, m.msg_key, m.payload, m.headers, m.deliver_at, m.attempts`;

const MARK_DELIVERED = `${REFS_AND_FENCE}
UPDATE messages m
SET state = 2, finished_at = $6::bigint, claimed_epoch = NULL
FROM targets t
WHERE m.app = t.app AND m.id = t.id AND m.slot = t.slot
  AND m.state = 1 AND m.claimed_epoch = t.epoch`;

/** `$7` the error, `$8` give up (→ failed, finished) or retry later (→ scheduled). */
const RELEASE = `${REFS_AND_FENCE}
UPDATE messages m
SET state = CASE WHEN $8::boolean THEN 4 ELSE 0 END,
    finished_at = CASE WHEN $8::boolean THEN $6::bigint END,
    last_error = $7::text,
    claimed_epoch = NULL
FROM targets t
WHERE m.app = t.app AND m.id = t.id AND m.slot = t.slot
  AND m.state = 1 AND m.claimed_epoch = t.epoch`;

export interface ClaimRow {
  app: string;
  id: string;
  slot: number;
  topic: string;
  msg_key: string | null;
  payload: Buffer;
  headers: Record<string, string>;
  deliver_at: string;
  attempts: number;
}

function fencedParams(
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  nowMs: number,
): unknown[] {
  const [leaseSlots, leaseEpochs] = leaseArrays(leases);
  return [
    refs.map((r) => r.app),
    refs.map((r) => r.id),
    refs.map((r) => r.slot),
    leaseSlots,
    leaseEpochs,
    nowMs,
  ];
}

export async function claimMessages(
  db: Queryable,
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  nowMs: number,
): Promise<ClaimRow[]> {
  const result = await db.query<ClaimRow>(CLAIM, fencedParams(refs, leases, nowMs));
  return result.rows;
}

export async function markMessagesDelivered(
  db: Queryable,
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  nowMs: number,
): Promise<number> {
  const result = await db.query(MARK_DELIVERED, fencedParams(refs, leases, nowMs));
  return result.rowCount ?? 0;
}

export async function releaseMessageClaims(
  db: Queryable,
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  error: string,
  giveUp: boolean,
  nowMs: number,
): Promise<number> {
  const result = await db.query(RELEASE, [...fencedParams(refs, leases, nowMs), error, giveUp]);
  return result.rowCount ?? 0;
}
