/**
 * A debounced insert (see libs/core/src/debounce.ts), in one transaction.
 *
 * Race-freedom comes from `messages_debounce_idx` (migration 006): among messages that are
 * scheduled and not yet claimed, an (app, debounce key) is held by one row at most. Two inserts of
 * one key on two nodes meet in that unique index: the second waits for the first's commit and then
 * takes the ON CONFLICT branch against it (trailing: merge into it; leading: yield to it). A claim
 * clears the key (claims.ts), so an insert that waited on a row a claim took meanwhile finds no
 * conflict and creates the next window's message.
 *
 * Steps:
 * 1. Leading only: a row whose window has ended lets the key go, so this insert opens a new one.
 * 2. The slot epochs of the new row's slot and of the current holder's (read without a lock,
 *    usually right) are locked FOR SHARE in ascending order, like an insert's (see insert.ts for
 *    why that makes "wheelable" safe against a takeover).
 * 3. INSERT … ON CONFLICT (app, debounce_key) WHERE … DO UPDATE (trailing) / DO NOTHING (leading).
 *    A trailing merge takes the new content, fresh target states and the due time
 *    min(now + windowMs, first + maxWaitMs), and raises the version. Copies of the holder held in
 *    a wheel under its old time claim nothing when they fire (the claim checks the due time).
 * 4. If the surviving row's slot was not locked in step 2 (the holder changed in between), its
 *    epoch row is locked now; then a wheel hint and NOTIFY for a near-due row of a slot this node
 *    does not hold, as an insert leaves.
 * An id that exists already (`messages_pkey`) rolls the transaction back: the caller answers it as
 * an ordinary re-send or conflict.
 */
import type { DebounceOutcome, DebounceSpec, NewMessage } from '@hourglass/core';
import type { PoolClient } from 'pg';
import type { MessageRow } from '../rows';
import { MESSAGE_COLUMNS, encodingCode, seqNumber, targetExtras, toStoredMessage } from '../rows';

const RELEASE_ENDED_WINDOW = `
UPDATE messages SET debounce_key = NULL
WHERE app = $1 AND debounce_key = $2 AND debounce_key IS NOT NULL AND state = 0
  AND debounce_started_at <= $3::bigint`;

const HOLDER_SLOT = `
SELECT slot FROM messages
WHERE app = $1 AND debounce_key = $2 AND debounce_key IS NOT NULL AND state = 0`;

const LOCK_EPOCHS = `
SELECT slot, epoch FROM slot_epochs WHERE slot = ANY($1::int[]) ORDER BY slot FOR SHARE`;

const insertSql = (onConflict: string): string => `
WITH input AS (SELECT $14::jsonb AS extra, $13::bigint AS max_wait_ms)
INSERT INTO messages (app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at,
                      fingerprint, targets, target_states, retry, content_type, debounce_key,
                      debounce_started_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::bigint, $10, extra->'t', extra->'s',
       nullif(extra->'r', 'null'::jsonb), extra->>'c', $11, $12::bigint
FROM input
ON CONFLICT (app, debounce_key) WHERE debounce_key IS NOT NULL AND state = 0
${onConflict}
RETURNING seq, (xmax = 0) AS inserted, ${MESSAGE_COLUMNS}`;

const TRAILING = insertSql(`DO UPDATE SET
  topic = EXCLUDED.topic, msg_key = EXCLUDED.msg_key, payload = EXCLUDED.payload,
  payload_encoding = EXCLUDED.payload_encoding, headers = EXCLUDED.headers,
  targets = EXCLUDED.targets, target_states = EXCLUDED.target_states, retry = EXCLUDED.retry,
  content_type = EXCLUDED.content_type, first_deliver_at = NULL,
  deliver_at = least(EXCLUDED.deliver_at, messages.debounce_started_at + $13::bigint),
  version = messages.version + 1`);
const LEADING = insertSql('DO NOTHING');

const HOLDER = `SELECT seq, ${MESSAGE_COLUMNS} FROM messages
WHERE app = $1 AND debounce_key = $2 AND debounce_key IS NOT NULL AND state = 0`;

const HINT = `
WITH hint AS (INSERT INTO wheel_hints (slot, seq, deliver_at) VALUES ($1, $2, $3) RETURNING slot)
SELECT pg_notify($4::text, slot::text) FROM hint`;

type Row = MessageRow & { seq: string; inserted?: boolean };

export interface DebounceContext {
  readonly ownedEpochs: ReadonlyMap<number, number>;
  readonly hintBeforeMs: number;
  readonly channel: string;
}

/** Runs the steps above on `client`, inside a transaction the caller opened. */
export async function insertDebouncedMessage(
  client: PoolClient,
  message: NewMessage,
  debounce: DebounceSpec,
  nowMs: number,
  context: DebounceContext,
): Promise<DebounceOutcome> {
  const key = [message.app, debounce.key];
  if (debounce.mode === 'leading')
    await client.query(RELEASE_ENDED_WINDOW, [...key, nowMs - debounce.windowMs]);
  const holder = await client.query<{ slot: number }>(HOLDER_SLOT, key);
  const slots = [...new Set([message.slot, ...holder.rows.map((row) => row.slot)])];
  const epochs = new Map<number, number>();
  const lock = async (wanted: number[]) => {
    const locked = await client.query<{ slot: number; epoch: string }>(LOCK_EPOCHS, [wanted]);
    for (const row of locked.rows) epochs.set(row.slot, Number(row.epoch));
  };
  await lock(slots);

  let row: Row | undefined;
  try {
    const result = await client.query<Row>(debounce.mode === 'trailing' ? TRAILING : LEADING, [
      message.app,
      message.id,
      message.slot,
      message.topic,
      message.key,
      message.payload,
      encodingCode(message.payloadEncoding),
      JSON.stringify(message.headers),
      message.deliverAtMs,
      message.fingerprint,
      debounce.key,
      nowMs,
      debounce.maxWaitMs,
      targetExtras(message),
    ]);
    row = result.rows[0];
  } catch (err) {
    const { code, constraint } = err as { code?: unknown; constraint?: unknown };
    if (code === '23505' && constraint === 'messages_pkey') return { kind: 'id_exists' };
    throw err;
  }
  if (!row) {
    // Leading, and the key is held: that message survives. (Read in a new snapshot, after the
    // insert waited for the holder's commit.)
    const kept = (await client.query<Row>(HOLDER, key)).rows[0];
    if (kept) return { kind: 'kept', message: toStoredMessage(kept) };
    // Claimed between the insert and this read: the caller tries again, in a new window.
    throw new DebounceRaceError();
  }
  const seq = seqNumber(row.seq);
  if (!epochs.has(row.slot)) await lock([row.slot]);
  const wheelable = epochs.get(row.slot) === context.ownedEpochs.get(row.slot);
  const deliverAtMs = Number(row.deliver_at);
  if (!wheelable && deliverAtMs < context.hintBeforeMs)
    await client.query(HINT, [row.slot, seq, deliverAtMs, context.channel]);
  return {
    kind: row.inserted ? 'created' : 'merged',
    message: toStoredMessage(row),
    seq,
    wheelable,
  };
}

/** A leading insert met a holder that was claimed before it could be read; try again. */
export class DebounceRaceError extends Error {
  constructor() {
    super('the debounce key changed hands during the insert');
  }
}
