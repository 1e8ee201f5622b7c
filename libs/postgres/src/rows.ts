/** Mapping between the table's compact encodings and the core's types. */
import type { MessageState, PayloadEncoding, StoredMessage, WheelItem } from '@hourglass/core';
import { messageKey } from '@hourglass/core';

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

export interface DueRow {
  slot: number;
  app: string;
  id: string;
  deliver_at: string;
}

export function toWheelItem(row: DueRow): WheelItem {
  return { key: messageKey(row.app, row.id), slot: row.slot, dueMs: int8(row.deliver_at) };
}

/**
 * Splits a wheel key back into (app, id). The separator is NUL, which a Postgres text value can
 * never contain, so the first NUL is the separator.
 */
export function splitKey(key: string): { app: string; id: string } {
  const at = key.indexOf('\u0000');
  if (at < 0) throw new Error(`not a message key: ${JSON.stringify(key)}`);
  return { app: key.slice(0, at), id: key.slice(at + 1) };
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
