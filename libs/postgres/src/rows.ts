/** Mapping between the table's compact encodings and the core's types. */
import type { MessageState, PayloadEncoding, StoredMessage, WheelItem } from '@hourglass/core';

/** `messages.state` values. The order is the schema's; never renumber. */
export const STATE_CODES: readonly MessageState[] = [
  'scheduled',
  'delivering',
  'delivered',
  'cancelled',
  'failed',
];

/** `messages.payload_encoding` values. */
const ENCODINGS: readonly PayloadEncoding[] = ['json', 'binary'];
export function encodingCode(encoding: PayloadEncoding): number {
  return encoding === 'json' ? 0 : 1;
}

/** A `messages` row as node-postgres returns it (int8 arrives as a string). */
export interface MessageRow {
  app: string;
  id: string;
  slot: number;
  topic: string;
  msg_key: string | null;
  payload: Buffer;
  payload_encoding: number;
  headers: Record<string, string>;
  deliver_at: string;
  state: number;
  created_at: string;
  finished_at: string | null;
  attempts: number;
  last_error: string | null;
  fingerprint: string;
}

/** The columns {@link toStoredMessage} needs, for `RETURNING`/`SELECT` lists. */
export const MESSAGE_COLUMNS =
  'app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at, state, created_at, finished_at, attempts, last_error, fingerprint';

function int8(value: string | number): number {
  // Epoch milliseconds and epochs stay far below 2^53.
  return typeof value === 'number' ? value : Number(value);
}

export function toStoredMessage(row: MessageRow): StoredMessage {
  const state = STATE_CODES[row.state];
  const encoding = ENCODINGS[row.payload_encoding];
  if (state === undefined || encoding === undefined) {
    throw new Error(
      `messages row ${row.app}/${row.id} has unknown state ${row.state} or encoding ${row.payload_encoding}`,
    );
  }
  return {
    app: row.app,
    id: row.id,
    slot: row.slot,
    topic: row.topic,
    key: row.msg_key,
    payload: row.payload,
    payloadEncoding: encoding,
    headers: row.headers,
    deliverAtMs: int8(row.deliver_at),
    state,
    createdAtMs: int8(row.created_at),
    finishedAtMs: row.finished_at === null ? null : int8(row.finished_at),
    attempts: row.attempts,
    lastError: row.last_error,
    fingerprint: row.fingerprint,
  };
}

/**
 * `messages.seq` as a number. The engine holds seqs in doubles (the wheel's Float64Array), exact
 * below 2^53; an identity sequence never gets there, but a value that did would be refused here
 * rather than silently rounded onto another message's seq.
 */
export function seqNumber(value: string | number): number {
  const seq = Number(value);
  if (!Number.isSafeInteger(seq) || seq < 0)
    throw new Error(`messages.seq ${value} is beyond 2^53`);
  return seq;
}

export interface DueRow {
  slot: number;
  seq: string;
  deliver_at: string;
}

export function toWheelItem(row: DueRow): WheelItem {
  return { seq: seqNumber(row.seq), slot: row.slot, dueMs: int8(row.deliver_at) };
}

/** A lease map as two parallel arrays, for `unnest($slots::int[], $epochs::bigint[])`. */
export function leaseArrays(leases: ReadonlyMap<number, number>): [number[], number[]] {
  const slots: number[] = [];
  const epochs: number[] = [];
  for (const [slot, epoch] of leases) {
    slots.push(slot);
    epochs.push(epoch);
  }
  return [slots, epochs];
}
