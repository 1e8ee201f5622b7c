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
 * The message-level guard (`state = 0` for claim; `state = 1 AND claimed_epoch = lease` for the
 * others) is re-checked under the row lock, which is what orders claim against cancel.
 *
 * ## Exactly one claim per delivery attempt
 *
 * The wheel does not deduplicate (it holds seqs only, no index), so the same message can be
 * fired twice by one node: loaded and inserted, hinted and loaded, re-wheeled after a failure.
 * The claim is what keeps that from producing it twice: it takes only `state = 0` rows, so while
 * one batch holds a message (`delivering`, until marked delivered or released) any other claim of
 * it, this node's included, gets nothing. A claim therefore never re-takes a row that is still
 * `delivering`, not even under the caller's own epoch. What puts a `delivering` row back is
 * releaseClaims (the engine retries it until it succeeds, before it re-wheels the messages) or
 * the reset done by the next acquisition of the slot, by another node or by this one after a
 * restart (slots.ts). A ref repeated within one claim updates its row once (an UPDATE changes a
 * row at most once per statement), so it is returned once.
 */
import type {
  ClaimRelease,
  MessageRef,
  RetryStrategy,
  TargetSpec,
  TargetState,
} from '@hourglass/core';
import { leaseArrays } from '../rows';
import type { Queryable } from './db';

/**
 * The fence CTE (see "The fence" above): the `slot_epochs` rows of the slots in a `refs` CTE whose
 * epoch is the caller's lease (`$3`/`$4`: the leases' slots and epochs), locked FOR SHARE in
 * ascending slot order. Every fenced write of the firing path starts with it.
 */
export const FENCE_CTE = `fence AS MATERIALIZED (
  SELECT e.slot, e.epoch
  FROM slot_epochs e
  JOIN unnest($3::int[], $4::bigint[]) AS l(slot, epoch) ON l.slot = e.slot
  WHERE e.slot IN (SELECT slot FROM refs) AND e.epoch = l.epoch
  ORDER BY e.slot
  FOR SHARE OF e
)`;

/** `$1` seqs and `$2` their slots (the refs), `$3`/`$4` the leases' slots and epochs, `$5` now. */
const REFS_AND_FENCE = `
WITH refs AS (
  SELECT r.seq, r.slot FROM unnest($1::bigint[], $2::int[]) AS r(seq, slot)
),
${FENCE_CTE},
-- The refs of fenced slots. Joining messages to this (and not to fence by slot) leaves the planner
-- one sensible path, a probe of messages_seq_idx per ref: fence's row estimate is poor (often 1),
-- and joined by slot it would scan every due message of the slots through messages_due_idx,
-- which after an outage is the whole backlog.
targets AS MATERIALIZED (
  SELECT r.seq, r.slot, f.epoch FROM refs r JOIN fence f ON f.slot = r.slot
)`;

const CLAIM = `${REFS_AND_FENCE}
UPDATE messages m
-- A claimed message no longer holds its debounce key: the next message of the key starts a new
-- window, and a release back to scheduled cannot collide with it (migration 006).
SET state = 1, claimed_epoch = t.epoch, debounce_key = NULL
FROM targets t
WHERE m.seq = t.seq AND m.slot = t.slot
  -- Only scheduled rows: a row still delivering is being produced by some batch, possibly one of
  -- ours holding the same message (see "Exactly one claim per delivery attempt" above).
  -- \`+ 0\` hides state and deliver_at from index matching, so messages_seq_idx is the only index
  -- that fits. Otherwise, with the few-rows estimates of a freshly filled table, the planner
  -- bitmap-scanned the partial indexes per ref (scripts/bench, when refs were (app, id): 1000
  -- refs over 30k pending rows took 190–240 ms, growing with the backlog up to the statement
  -- timeout).
  AND m.state + 0 = 0 AND m.deliver_at + 0 <= $5::bigint
RETURNING m.seq, m.app, m.id, m.slot, m.topic, m.msg_key, m.payload, m.headers, m.deliver_at, m.attempts,
          m.payload_encoding, m.targets, m.target_states, m.retry, m.content_type, m.first_deliver_at`;

const MARK_DELIVERED = `${REFS_AND_FENCE}
UPDATE messages m
SET state = 2, finished_at = $5::bigint, claimed_epoch = NULL, attempts = m.attempts + 1
FROM targets t
WHERE m.seq = t.seq AND m.slot = t.slot
  AND m.state = 1 AND m.claimed_epoch = t.epoch`;

/**
 * `$6` the error, `$7` give up (→ failed, finished) or retry later (→ scheduled), `$8` whether the
 * target answered (the attempt counts; an outage does not).
 */
const RELEASE = `${REFS_AND_FENCE}
UPDATE messages m
SET state = CASE WHEN $7::boolean THEN 4 ELSE 0 END,
    finished_at = CASE WHEN $7::boolean THEN $5::bigint END,
    last_error = $6::text,
    attempts = m.attempts + CASE WHEN $8::boolean THEN 1 ELSE 0 END,
    claimed_epoch = NULL
FROM targets t
WHERE m.seq = t.seq AND m.slot = t.slot
  AND m.state = 1 AND m.claimed_epoch = t.epoch`;

/** Exported for EXPLAIN in tests. */
export const claimStatement = CLAIM;

export interface ClaimRow {
  seq: string;
  app: string;
  id: string;
  slot: number;
  topic: string;
  msg_key: string | null;
  payload: Buffer;
  headers: Record<string, string>;
  deliver_at: string;
  attempts: number;
  payload_encoding: number;
  targets: TargetSpec[] | null;
  target_states: TargetState[] | null;
  retry: RetryStrategy | null;
  content_type: string | null;
  first_deliver_at: string | null;
}

function fencedParams(
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  nowMs: number,
): unknown[] {
  const [leaseSlots, leaseEpochs] = leaseArrays(leases);
  return [refs.map((r) => r.seq), refs.map((r) => r.slot), leaseSlots, leaseEpochs, nowMs];
}

export async function claimMessages(
  db: Queryable,
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  nowMs: number,
): Promise<ClaimRow[]> {
  const result = await db.query<ClaimRow>({
    name: 'hourglass_claim',
    text: CLAIM,
    values: fencedParams(refs, leases, nowMs),
  });
  return result.rows;
}

export async function markMessagesDelivered(
  db: Queryable,
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  nowMs: number,
): Promise<number> {
  const result = await db.query({
    name: 'hourglass_mark_delivered',
    text: MARK_DELIVERED,
    values: fencedParams(refs, leases, nowMs),
  });
  return result.rowCount ?? 0;
}

export async function releaseMessageClaims(
  db: Queryable,
  refs: readonly MessageRef[],
  leases: ReadonlyMap<number, number>,
  release: ClaimRelease,
  nowMs: number,
): Promise<number> {
  const result = await db.query({
    name: 'hourglass_release',
    text: RELEASE,
    values: [
      ...fencedParams(refs, leases, nowMs),
      release.error,
      release.giveUp,
      release.countAttempt,
    ],
  });
  return result.rowCount ?? 0;
}
