/**
 * Changing a scheduled message (PATCH /v1/messages/{id}): read it, merge the patch, validate the
 * result like a new message, and write it as a compare-and-swap on its version.
 *
 * The read and the write are two statements, so another change or a delivery round can come in
 * between. The write only applies to the version that was read (`updateScheduled`), so nothing of a
 * concurrent change is lost: without `If-Match` a lost race is tried again on the newer version (a
 * last-writer-wins change, field by field as the patch names them); with `If-Match` it is answered
 * 412, which is what the client asked for. A delivery round never changes what a patch writes
 * (content, targets, retry), only target states and the due time of a retry, which the statement
 * adjusts in place.
 */
import type { MessageState, StoredMessage } from '@hourglass/core';
import {
  HourglassError,
  INITIAL_TARGET_STATE,
  ifMatchAllows,
  mergeMessagePatch,
  parseScheduleRequest,
} from '@hourglass/core';
import type { Clock, MessageChange, MessageLimits, MessageStore } from '@hourglass/core';
import type { DelayEngine } from './engine';

/** A lost race is read and tried again this often before answering "ask again". */
const UPDATE_ATTEMPTS = 5;

export interface UpdateContext {
  readonly store: MessageStore;
  readonly engine: DelayEngine;
  readonly clock: Clock;
  /** The app's limits (see MessageService.limitsFor). */
  readonly limits: MessageLimits;
  readonly app: string;
  /** Refuses targets the app may not use (topics not granted, hosts not allowed). */
  readonly checkTargets: (request: ReturnType<typeof parseScheduleRequest>) => void;
}

/** Applies `patch` to the app's message `id`; resolves with the message as it is afterwards. */
export async function updateMessage(
  context: UpdateContext,
  id: string,
  patch: unknown,
  ifMatch: 'any' | readonly number[] | null,
): Promise<{ message: StoredMessage; rescheduled: boolean }> {
  const { store, engine, clock, app } = context;
  for (let attempt = 1; ; attempt++) {
    const stored = await store.get(app, id);
    if (!stored) throw new HourglassError('not_found', `no message "${id}" for app "${app}"`);
    const version = stored.version ?? 1;
    if (!ifMatchAllows(ifMatch, version))
      throw new HourglassError(
        'version_mismatch',
        `message "${id}" is at version ${version}, not the one If-Match names; read it again (its ETag) and decide`,
        [{ path: 'If-Match', message: `current ETag: "${version}"` }],
      );
    if (stored.state !== 'scheduled') throw notScheduled(id, stored.state, 'changed');

    const merged = mergeMessagePatch(stored, patch);
    const request = parseScheduleRequest(merged.body, context.limits, clock.now());
    context.checkTargets(request);
    const freshStates =
      request.targets !== null && (merged.targetsChanged || !stored.targets)
        ? request.targets.map(() => INITIAL_TARGET_STATE)
        : null;
    const change: MessageChange = {
      topic: request.topic,
      key: request.key,
      payload: request.payload,
      payloadEncoding: request.payloadEncoding,
      headers: request.headers,
      targets: request.targets,
      retry: request.retry,
      contentType: request.contentType,
      targetStates: freshStates,
      deliverAtMs: merged.timeChanged ? request.deliverAtMs : null,
    };
    const updated = await engine.update(app, id, version, change);
    if (updated) {
      const after = await store.get(app, id);
      if (!after) throw new HourglassError('not_found', `no message "${id}" for app "${app}"`);
      return { message: after, rescheduled: merged.timeChanged };
    }
    // Lost to a claim, a cancel or another change: the next read says which.
    if (attempt >= UPDATE_ATTEMPTS)
      throw new HourglassError(
        'delivery_in_progress',
        `message "${id}" kept changing while this change was applied; ask again`,
      );
  }
}

/** Why a message that is not scheduled cannot be `action` (cancel, change): 409 codes. */
export function notScheduled(
  id: string,
  state: MessageState,
  action: 'cancelled' | 'changed',
): HourglassError {
  switch (state) {
    case 'cancelled':
      return new HourglassError('already_cancelled', `message "${id}" was already cancelled`);
    case 'failed':
      return new HourglassError(
        'already_failed',
        `message "${id}" failed delivery and cannot be ${action}`,
      );
    case 'delivered':
      return new HourglassError('already_delivered', `message "${id}" was already delivered`);
    // 'scheduled' after the store's retries: claims keep winning the race.
    case 'delivering':
    case 'scheduled':
      return new HourglassError(
        'delivery_in_progress',
        `message "${id}" is being delivered right now; ask again to learn whether it was delivered`,
      );
  }
}
