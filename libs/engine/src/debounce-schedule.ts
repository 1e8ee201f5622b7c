/**
 * `POST /v1/messages` with `debounce` (libs/core/src/debounce.ts): validated like any message,
 * then inserted under its debounce key by the store, race-free across nodes.
 */
import { randomBytes } from 'node:crypto';
import type {
  Clock,
  MessageLimits,
  NewMessage,
  ScheduleRequest,
  StoredMessage,
} from '@hourglass/core';
import {
  HourglassError,
  newMessageOf,
  parseDebounce,
  parseScheduleRequest,
  slotOf,
  uuidv7,
} from '@hourglass/core';
import type { DelayEngine } from './engine';

export interface DebounceContext {
  readonly engine: DelayEngine;
  readonly clock: Clock;
  readonly limits: MessageLimits;
  readonly app: string;
  readonly slotCount: number;
  readonly checkTargets: (request: ScheduleRequest) => void;
  /** Throws when the app may not insert one more message (rate and pending quotas). */
  readonly admit: () => Promise<void>;
}

export interface DebouncedResult {
  /** A new message was created (a new window). */
  readonly created: boolean;
  /** This request was merged into, or yielded to, the message that survives. */
  readonly debounced: boolean;
  readonly message: StoredMessage;
}

export function hasDebounce(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && 'debounce' in body;
}

export async function scheduleDebounced(
  context: DebounceContext,
  body: Record<string, unknown>,
): Promise<DebouncedResult> {
  const now = context.clock.now();
  const { debounce, message: rest } = parseDebounce(body, context.limits.maxDelayMs);
  const request = parseScheduleRequest(rest, context.limits, now);
  context.checkTargets(request);
  const id = request.id ?? uuidv7(now, randomBytes);
  const message = newMessageOf(
    context.app,
    id,
    slotOf(context.app, id, context.slotCount),
    request,
  );
  await context.admit();
  const outcome = await context.engine.insertDebounced(message, debounce);
  switch (outcome.kind) {
    case 'created':
      return { created: true, debounced: false, message: outcome.message };
    case 'merged':
    case 'kept':
      return { created: false, debounced: true, message: outcome.message };
    case 'id_exists':
      return existingId(context, message);
  }
}

/** The id is taken: an identical re-send gets the stored message, other content a conflict. */
async function existingId(context: DebounceContext, message: NewMessage): Promise<DebouncedResult> {
  const [outcome] = await context.engine.insert([message]);
  if (outcome?.kind === 'existing')
    return { created: false, debounced: false, message: outcome.message };
  // Removed (by retention) between the two statements, so the id was free again: created, as an
  // ordinary message that holds no debounce key.
  if (outcome?.kind === 'created')
    return { created: true, debounced: false, message: outcome.message };
  throw new HourglassError(
    'id_conflict',
    `message "${message.id}" already exists with different content`,
    [{ path: 'id', message: 'reuse an id only to re-send identical content' }],
  );
}
