/**
 * The rescheduled share of the load: right after its POST was acknowledged, a Kafka message is
 * moved with `PATCH /v1/messages/{id}` to an absolute `deliverAt` (epoch ms), later or earlier at
 * random, with a payload that carries `v: 2`. The time is absolute and chosen once, so a PATCH
 * retried after a lost answer applies the very same change again.
 *
 * What the outcome promises (README, "PATCH /v1/messages/{id}"):
 *
 *   moved     200: the old version is never delivered; version 2 once, never before the new time
 *   refused   409 (or another 4xx) to a PATCH none of whose earlier attempts can have committed,
 *             or a PATCH that never reached a node: the change did not happen; version 1 at the
 *             old time
 *   unknown   the client gave up, or a refusal came after an attempt that may have committed
 *             (a timeout, a reset, a 5xx): either version, at its own time, but never both
 */
import { log } from './common';
import type { SentMessage } from './load';
import type { AttemptLog, RetryingClient } from './requests';
import { neverSent } from './requests';

/** The PATCH never lands closer than this to the moment it is first sent. */
export const MIN_LEAD_MS = 1_000;
/** How far a message is moved: at least this much, either way. */
const MIN_SHIFT_MS = 500;
/** ... and at most this much later. */
const MAX_LATER_MS = 4_000;
/** PATCH refusals logged one by one; after that, only counted. */
const MAX_REFUSALS_LOGGED = 10;

export type MoveOutcome = 'moved' | 'refused' | 'unknown';

export interface Move extends AttemptLog {
  /** The `deliverAt` every PATCH attempt asks for, epoch ms (set when the first is sent). */
  requestedMs?: number;
  sentAt?: number;
  outcome?: MoveOutcome;
  /** The status (and error code) of the answer that ended it. */
  answer?: string;
  /** When the 200 arrived, and the `deliverAt` in it. */
  ackedAt?: number;
  dueMs?: number;
}

/** The payload of the moved version: the original one, marked. */
export function movedPayload(message: SentMessage): Record<string, unknown> {
  return { id: message.id, createdAt: message.createdAt, v: 2 };
}

/** A new due time for a message due at `dueMs`, PATCHed at `nowMs`: later or earlier at random. */
export function newDueTime(dueMs: number, nowMs: number, random = Math.random): number {
  const earliest = nowMs + MIN_LEAD_MS;
  const roomEarlier = dueMs - MIN_SHIFT_MS - earliest;
  if (roomEarlier > 0 && random() < 0.5) return earliest + Math.floor(random() * roomEarlier);
  const from = Math.max(dueMs + MIN_SHIFT_MS, earliest);
  return from + Math.floor(random() * (MAX_LATER_MS - MIN_SHIFT_MS));
}

let refusals = 0;

/** Moves `message` (acknowledged, with `move` set); records the outcome on `message.move`. */
export async function reschedule(
  client: RetryingClient,
  message: SentMessage,
  giveUpAt: number,
): Promise<void> {
  const move = message.move;
  if (!move || message.dueMs === undefined) return;
  move.sentAt = Date.now();
  move.requestedMs = newDueTime(message.dueMs, move.sentAt);
  const body = JSON.stringify({ deliverAt: move.requestedMs, payload: movedPayload(message) });
  const answer = await client.send(
    'PATCH',
    `/v1/messages/${encodeURIComponent(message.id)}`,
    body,
    move,
    giveUpAt,
  );
  if (answer.kind === 'gave-up') {
    // A PATCH that never reached a node cannot have changed anything.
    move.outcome = move.failures.every(neverSent) ? 'refused' : 'unknown';
    move.answer = 'gave up';
    return;
  }
  if (answer.status === 200) {
    move.outcome = 'moved';
    move.answer = '200';
    move.ackedAt = Date.now();
    move.dueMs = Date.parse((JSON.parse(answer.text) as { deliverAt: string }).deliverAt);
    return;
  }
  const code = /"code":"([a-z_]+)"/.exec(answer.text)?.[1] ?? answer.text.slice(0, 80);
  move.answer = `${answer.status} ${code}`;
  move.outcome = move.failures.every(neverSent) ? 'refused' : 'unknown';
  // 409 is the expected race with the firing side; anything else is worth a line.
  if (answer.status !== 409 && ++refusals <= MAX_REFUSALS_LOGGED) {
    log(`PATCH of ${message.id} answered ${answer.status}: ${answer.text.slice(0, 160)}`);
  }
}
