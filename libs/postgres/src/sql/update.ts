/**
 * Changing a scheduled message (PATCH /v1/messages/{id}): one statement that replaces its content
 * and, when asked, its due time, and raises its version.
 *
 * Why it is definitive: like cancel, the UPDATE only takes a row that is `state = 0`, which is the
 * condition the claim also re-checks under the row lock, so change and claim are ordered: a claim
 * that comes first makes the change miss (the caller answers 409), and a claim that comes after
 * reads the new content and the new due time (`deliver_at <= now` in the claim keeps a copy of the
 * message still held in some wheel under the old time from firing it early, or at all: it fires to
 * nothing and the new time's copy delivers it). `version = $3` makes it a compare-and-swap, so two
 * changes racing on one message cannot both apply to the same old version.
 *
 * The new due time reaches the owner like a new message does (see insert.ts): the slot's epoch row
 * is locked FOR SHARE, and if it is not this node's epoch and the new time is near (before
 * `hintBefore`, i.e. inside what the owner has loaded already), a wheel hint is left for the owner
 * and NOTIFY wakes it. A due time beyond that is loaded by the owner's loader when its horizon gets
 * there. A change that keeps the due time needs neither: the copies held stay right.
 *
 * A message waiting out a retry backoff is `scheduled` too: moving its due time forgets the
 * backoff (each pending target's next attempt goes back to "at the message's due time"), and new
 * targets start with fresh states (`$12`).
 */
import { encodingCode, leaseArrays } from '../rows';
import type { MessageChange, MessageUpdated } from '@hourglass/core';
import type { Queryable } from './db';

const UPDATE = `
WITH target AS (
  SELECT seq, slot, deliver_at FROM messages WHERE app = $1 AND id = $2
),
locked AS MATERIALIZED (
  SELECT e.slot, e.epoch FROM slot_epochs e WHERE e.slot IN (SELECT slot FROM target) FOR SHARE
),
updated AS (
  UPDATE messages m
  SET version = m.version + 1,
      topic = $4::text,
      msg_key = $5::text,
      payload = $6::bytea,
      payload_encoding = $7::smallint,
      headers = $8::jsonb,
      targets = $9::jsonb,
      retry = $10::jsonb,
      content_type = $11::text,
      target_states = CASE
        WHEN $9::jsonb IS NULL THEN NULL
        WHEN $12::jsonb IS NOT NULL THEN $12::jsonb
        WHEN $13::bigint IS NOT NULL AND m.target_states IS NOT NULL THEN (
          SELECT jsonb_agg(
                   CASE WHEN s.e->>'status' = 'pending'
                        THEN jsonb_set(s.e, '{nextAttemptAtMs}', 'null'::jsonb) ELSE s.e END
                   ORDER BY s.i)
          FROM jsonb_array_elements(m.target_states) WITH ORDINALITY AS s(e, i))
        ELSE m.target_states END,
      deliver_at = coalesce($13::bigint, m.deliver_at),
      first_deliver_at = CASE WHEN $13::bigint IS NULL THEN m.first_deliver_at END
  FROM target t
  WHERE m.seq = t.seq AND m.state = 0 AND m.version = $3::int
  RETURNING m.seq, m.slot, m.deliver_at, m.version, t.deliver_at AS previous_deliver_at
),
classified AS (
  SELECT u.*, coalesce(l.epoch = o.epoch, false) AS wheelable
  FROM updated u
  LEFT JOIN locked l ON l.slot = u.slot
  LEFT JOIN unnest($14::int[], $15::bigint[]) AS o(slot, epoch) ON o.slot = u.slot
),
hints AS (
  INSERT INTO wheel_hints (slot, seq, deliver_at)
  SELECT slot, seq, deliver_at FROM classified
  WHERE NOT wheelable AND $13::bigint IS NOT NULL AND deliver_at < $16::bigint
  RETURNING slot
),
notified AS (
  SELECT pg_notify($17::text, string_agg(DISTINCT slot::text, ',')) FROM hints
)
SELECT c.seq, c.slot, c.deliver_at, c.version, c.previous_deliver_at, c.wheelable
FROM classified c CROSS JOIN (SELECT count(*) FROM notified) n`;

export async function updateScheduledMessage(
  db: Queryable,
  app: string,
  id: string,
  expectedVersion: number,
  change: MessageChange,
  context: { ownedEpochs: ReadonlyMap<number, number>; hintBeforeMs: number },
  channel: string,
): Promise<MessageUpdated | null> {
  const [ownedSlots, ownedEpochs] = leaseArrays(context.ownedEpochs);
  const result = await db.query<{
    seq: string;
    slot: number;
    deliver_at: string;
    version: number;
    previous_deliver_at: string;
    wheelable: boolean;
  }>(UPDATE, [
    app,
    id,
    expectedVersion,
    change.topic,
    change.key,
    change.payload,
    encodingCode(change.payloadEncoding),
    JSON.stringify(change.headers),
    change.targets === null ? null : JSON.stringify(change.targets),
    change.retry === null ? null : JSON.stringify(change.retry),
    change.contentType,
    change.targetStates === null ? null : JSON.stringify(change.targetStates),
    change.deliverAtMs,
    ownedSlots,
    ownedEpochs,
    context.hintBeforeMs,
    channel,
  ]);
  const row = result.rows[0];
  if (!row) return null;
  return {
    seq: Number(row.seq),
    slot: row.slot,
    deliverAtMs: Number(row.deliver_at),
    previousDeliverAtMs: Number(row.previous_deliver_at),
    version: row.version,
    wheelable: row.wheelable,
  };
}
