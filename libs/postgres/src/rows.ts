/** Mapping between the table's compact encodings and the core's types. */
import { INITIAL_TARGET_STATE } from '@hourglass/core';
import type { ClaimRow } from './sql/claims';
import type {
  ClaimedMessage,
  MessageState,
  PayloadEncoding,
  RetryStrategy,
  StoredMessage,
  TargetSpec,
  TargetState,
  WheelItem,
} from '@hourglass/core';

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
  targets: TargetSpec[] | null;
  target_states: TargetState[] | null;
  retry: RetryStrategy | null;
  content_type: string | null;
  first_deliver_at: string | null;
  version: number;
}

/** The columns {@link toStoredMessage} needs, for `RETURNING`/`SELECT` lists. */
export const MESSAGE_COLUMNS =
  'app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at, state, created_at, finished_at, attempts, last_error, fingerprint, targets, target_states, retry, content_type, first_deliver_at, version';

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
    targets: row.targets,
    targetStates: row.target_states,
    retry: row.retry,
    contentType: row.content_type,
    firstDeliverAtMs: row.first_deliver_at === null ? null : int8(row.first_deliver_at),
    version: row.version,
  };
}

export function encodingOf(code: number): PayloadEncoding {
  const encoding = ENCODINGS[code];
  if (encoding === undefined) throw new Error(`unknown payload encoding ${code}`);
  return encoding;
}

/**
 * The target fields of a new message as one JSON text for the insert (null for the fast path):
 * one array parameter instead of four keeps the hot insert statement as it was.
 */
export function targetExtras(message: {
  targets?: readonly TargetSpec[] | null;
  retry?: RetryStrategy | null;
  contentType?: string | null;
}): string | null {
  if (!message.targets) return null;
  return JSON.stringify({
    t: message.targets,
    s: message.targets.map(() => INITIAL_TARGET_STATE),
    r: message.retry ?? null,
    c: message.contentType ?? null,
  });
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

/** A claimed row as the firing path gets it. */
export function toClaimedMessage(row: ClaimRow): ClaimedMessage {
  return {
    seq: seqNumber(row.seq),
    app: row.app,
    id: row.id,
    slot: row.slot,
    topic: row.topic,
    key: row.msg_key,
    payload: row.payload,
    headers: row.headers,
    deliverAtMs: int8(row.deliver_at),
    attempts: row.attempts,
    payloadEncoding: encodingOf(row.payload_encoding),
    targets: row.targets,
    targetStates: row.target_states,
    retry: row.retry,
    contentType: row.content_type,
    firstDeliverAtMs: row.first_deliver_at === null ? null : int8(row.first_deliver_at),
  };
}
