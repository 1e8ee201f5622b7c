/**
 * Messages with a target list (HTTP callbacks, fan-out): settling an attempt round, the attempt
 * log, and re-arming a failed message.
 *
 * settleTargets is fenced exactly like markDelivered (../sql/claims.ts explains the fence): only a
 * row still `delivering` under the caller's epoch is settled. In one statement it writes the
 * message's new state, its target states, the next attempt's due time (`deliver_at`, keeping the
 * first due time in `first_deliver_at`) and the attempt log rows, so the log never shows an
 * attempt the state does not, or the other way round.
 */
import type {
  InsertContext,
  LoggedAttempt,
  MessageRef,
  TargetSettlement,
  TargetState,
} from '@hourglass/core';
import { leaseArrays } from '../rows';
import { FENCE_CTE } from './claims';
import type { Queryable } from './db';

const STATE_CODE = { scheduled: 0, delivered: 2, failed: 4 } as const;

const SETTLE = `
WITH refs AS (
  SELECT r.seq, r.slot, r.state, r.deliver_at, r.states, r.counted, r.last_error
  FROM unnest($1::bigint[], $2::int[], $6::smallint[], $7::bigint[], $8::text[], $9::int[], $10::text[])
       AS r(seq, slot, state, deliver_at, states, counted, last_error)
),
${FENCE_CTE},
fenced AS MATERIALIZED (
  SELECT r.*, f.epoch FROM refs r JOIN fence f ON f.slot = r.slot
),
settled AS (
  UPDATE messages m
  SET state = t.state,
      first_deliver_at = CASE WHEN t.deliver_at <> m.deliver_at
                              THEN coalesce(m.first_deliver_at, m.deliver_at)
                              ELSE m.first_deliver_at END,
      deliver_at = t.deliver_at,
      target_states = t.states::jsonb,
      attempts = m.attempts + t.counted,
      last_error = coalesce(t.last_error, m.last_error),
      finished_at = CASE WHEN t.state IN (2, 4) THEN $5::bigint END,
      claimed_epoch = NULL
  FROM fenced t
  WHERE m.seq = t.seq AND m.slot = t.slot
    AND m.state = 1 AND m.claimed_epoch = t.epoch
  RETURNING m.seq, m.app, m.id
),
logged AS (
  INSERT INTO message_attempts (app, id, target, attempt, at, duration_ms, status, error, response)
  SELECT s.app, s.id, a.target, a.attempt, a.at, a.duration_ms, a.status, a.error, a.response
  FROM unnest($11::bigint[], $12::int[], $13::int[], $14::bigint[], $15::int[], $16::int[],
              $17::text[], $18::text[])
       AS a(seq, target, attempt, at, duration_ms, status, error, response)
  JOIN settled s ON s.seq = a.seq
  RETURNING 1
)
SELECT (SELECT count(*) FROM settled) AS settled, (SELECT count(*) FROM logged) AS logged`;

export async function settleTargetRound(
  db: Queryable,
  settlements: readonly TargetSettlement[],
  leases: ReadonlyMap<number, number>,
  nowMs: number,
): Promise<number> {
  const [leaseSlots, leaseEpochs] = leaseArrays(leases);
  const attempts = settlements.flatMap((settlement) =>
    settlement.attempts.map((attempt) => ({ seq: settlement.ref.seq, ...attempt })),
  );
  const result = await db.query<{ settled: string }>({
    name: 'hourglass_settle_targets',
    text: SETTLE,
    values: [
      settlements.map((s) => s.ref.seq),
      settlements.map((s) => s.ref.slot),
      leaseSlots,
      leaseEpochs,
      nowMs,
      settlements.map((s) => STATE_CODE[s.state]),
      settlements.map((s) => s.deliverAtMs),
      settlements.map((s) => JSON.stringify(s.targetStates)),
      settlements.map((s) => s.countedAttempts),
      settlements.map((s) => s.lastError),
      attempts.map((a) => a.seq),
      attempts.map((a) => a.target),
      attempts.map((a) => a.attempt),
      attempts.map((a) => a.atMs),
      attempts.map((a) => Math.max(0, Math.round(a.durationMs))),
      attempts.map((a) => a.status),
      attempts.map((a) => a.error),
      attempts.map((a) => a.response),
    ],
  });
  return Number(result.rows[0]?.settled ?? 0);
}

interface AttemptRow {
  target: number;
  attempt: number;
  at: string;
  duration_ms: number;
  status: number | null;
  error: string | null;
  response: string | null;
  type: string | null;
}

export async function selectAttempts(
  db: Queryable,
  app: string,
  id: string,
): Promise<LoggedAttempt[]> {
  const result = await db.query<AttemptRow>(
    `SELECT a.target, a.attempt, a.at, a.duration_ms, a.status, a.error, a.response,
            m.targets -> a.target ->> 'type' AS type
     FROM message_attempts a
     LEFT JOIN messages m ON m.app = a.app AND m.id = a.id
     WHERE a.app = $1 AND a.id = $2
     ORDER BY a.at, a.target, a.attempt`,
    [app, id],
  );
  return result.rows.map((row) => ({
    target: row.target,
    type: row.type === 'kafka' ? 'kafka' : 'http',
    attempt: row.attempt,
    atMs: Number(row.at),
    durationMs: row.duration_ms,
    status: row.status,
    error: row.error,
    response: row.response,
  }));
}

/**
 * failed → scheduled, due now, under the slot's epoch lock like an insert (../sql/insert.ts):
 * a message this node cannot wheel itself gets a wheel hint for its owner.
 */
const REARM = `
WITH target AS (
  SELECT seq, slot FROM messages WHERE app = $1 AND id = $2 AND state = 4
),
locked AS MATERIALIZED (
  SELECT e.slot, e.epoch FROM slot_epochs e WHERE e.slot IN (SELECT slot FROM target) FOR SHARE
),
rearmed AS (
  UPDATE messages m
  SET state = 0,
      first_deliver_at = coalesce(m.first_deliver_at, m.deliver_at),
      deliver_at = $4::bigint,
      target_states = coalesce($3::jsonb, m.target_states),
      attempts = CASE WHEN m.targets IS NULL THEN 0 ELSE m.attempts END,
      finished_at = NULL,
      claimed_epoch = NULL
  FROM target t
  WHERE m.seq = t.seq AND m.state = 4
  RETURNING m.seq, m.slot, m.deliver_at
),
classified AS (
  SELECT r.seq, r.slot, r.deliver_at, coalesce(l.epoch = o.epoch, false) AS wheelable
  FROM rearmed r
  LEFT JOIN locked l ON l.slot = r.slot
  LEFT JOIN unnest($5::int[], $6::bigint[]) AS o(slot, epoch) ON o.slot = r.slot
),
hints AS (
  INSERT INTO wheel_hints (slot, seq, deliver_at)
  SELECT slot, seq, deliver_at FROM classified WHERE NOT wheelable
  RETURNING slot
),
notified AS (
  SELECT pg_notify($7::text, string_agg(DISTINCT slot::text, ',')) FROM hints
)
SELECT c.seq, c.slot, c.wheelable FROM classified c CROSS JOIN (SELECT count(*) FROM notified) n`;

export async function rearmFailedMessage(
  db: Queryable,
  app: string,
  id: string,
  targetStates: readonly TargetState[] | null,
  nowMs: number,
  context: InsertContext,
  channel: string,
): Promise<{ seq: number; slot: number; wheelable: boolean } | null> {
  const [ownedSlots, ownedEpochs] = leaseArrays(context.ownedEpochs);
  const result = await db.query<{ seq: string; slot: number; wheelable: boolean }>(REARM, [
    app,
    id,
    targetStates === null ? null : JSON.stringify(targetStates),
    nowMs,
    ownedSlots,
    ownedEpochs,
    channel,
  ]);
  const row = result.rows[0];
  return row ? { seq: Number(row.seq), slot: row.slot, wheelable: row.wheelable } : null;
}

export type { MessageRef };
