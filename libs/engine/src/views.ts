/** What clients see of messages, targets and attempts (HTTP and gRPC alike). */
import type {
  LoggedAttempt,
  PublicMessageState,
  RetryStrategy,
  StoredMessage,
  TargetStatus,
} from '@hourglass/core';
import { INITIAL_TARGET_STATE, isoTime, publicState } from '@hourglass/core';

/** One target of a message as clients see it (docs/callbacks.md). */
export type TargetView = {
  index: number;
  state: TargetStatus;
  attempts: number;
  lastError?: string;
  lastStatus?: number;
  nextAttemptAt?: string;
  finishedAt?: string;
} & (
  | { type: 'kafka'; topic: string; key: string | null }
  | { type: 'http'; url: string; method: 'POST' | 'PUT'; name?: string }
);

/** One attempt of one target (GET /v1/messages/{id}/attempts). */
export interface AttemptView {
  target: number;
  type: 'kafka' | 'http';
  attempt: number;
  at: string;
  durationMs: number;
  status?: number;
  error?: string;
  response?: string;
}

/** What clients see of a message. Times are ISO-8601 UTC. */
export interface MessageView {
  id: string;
  app: string;
  /** The first Kafka target's topic; null when the message has none. */
  topic: string | null;
  key: string | null;
  slot: number;
  deliverAt: string;
  state: PublicMessageState;
  createdAt: string;
  deliveredAt?: string;
  finishedAt?: string;
  attempts: number;
  lastError?: string;
  nextAttemptAt?: string;
  targets: TargetView[];
  retry?: RetryStrategy;
  /** Raised by every change; the ETag is its quoted form. */
  version: number;
  /** Only in the answer to a schedule with `debounce`: this request was merged or yielded. */
  debounced?: boolean;
}

export function toView(message: StoredMessage): MessageView {
  const view: MessageView = {
    id: message.id,
    app: message.app,
    topic: message.targets && message.topic === '' ? null : message.topic,
    key: message.key,
    slot: message.slot,
    // isoTime: toISOString's string, cheaper (a batch answer formats 2000 of them).
    deliverAt: isoTime(message.firstDeliverAtMs ?? message.deliverAtMs),
    state: publicState(message.state),
    createdAt: isoTime(message.createdAtMs),
    attempts: message.attempts,
    targets: targetViews(message),
    version: message.version ?? 1,
  };
  if (message.state === 'delivered' && message.finishedAtMs !== null)
    view.deliveredAt = isoTime(message.finishedAtMs);
  if (message.finishedAtMs !== null) view.finishedAt = isoTime(message.finishedAtMs);
  if (message.lastError) view.lastError = message.lastError;
  if (message.targets && message.state === 'scheduled' && message.firstDeliverAtMs != null)
    view.nextAttemptAt = isoTime(message.deliverAtMs);
  if (message.retry) view.retry = message.retry;
  return view;
}

function targetViews(message: StoredMessage): TargetView[] {
  if (!message.targets) {
    // The Kafka fast path: one Kafka target, whose state is the message's.
    const state: TargetStatus =
      message.state === 'delivered'
        ? 'delivered'
        : message.state === 'failed'
          ? 'failed'
          : 'pending';
    const view: TargetView = {
      index: 0,
      type: 'kafka',
      topic: message.topic,
      key: message.key,
      state: message.state === 'cancelled' ? 'pending' : state,
      attempts: message.attempts,
    };
    if (message.lastError) view.lastError = message.lastError;
    if (message.finishedAtMs !== null && state !== 'pending')
      view.finishedAt = isoTime(message.finishedAtMs);
    return [view];
  }
  return message.targets.map((target, index) => {
    const state = message.targetStates?.[index] ?? INITIAL_TARGET_STATE;
    const view: TargetView =
      target.type === 'kafka'
        ? {
            index,
            type: 'kafka',
            topic: target.topic,
            key: target.key,
            state: state.status,
            attempts: state.attempts,
          }
        : {
            index,
            type: 'http',
            url: target.url,
            method: target.method,
            ...(target.name !== null ? { name: target.name } : {}),
            state: state.status,
            attempts: state.attempts,
          };
    if (state.lastError !== null) view.lastError = state.lastError;
    if (state.lastStatus !== null) view.lastStatus = state.lastStatus;
    if (
      state.status === 'pending' &&
      state.nextAttemptAtMs !== null &&
      message.state === 'scheduled'
    )
      view.nextAttemptAt = isoTime(state.nextAttemptAtMs);
    if (state.finishedAtMs !== null) view.finishedAt = isoTime(state.finishedAtMs);
    return view;
  });
}

export function toAttemptView(attempt: LoggedAttempt): AttemptView {
  const view: AttemptView = {
    target: attempt.target,
    type: attempt.type,
    attempt: attempt.attempt,
    at: isoTime(attempt.atMs),
    durationMs: attempt.durationMs,
  };
  if (attempt.status !== null) view.status = attempt.status;
  if (attempt.error !== null) view.error = attempt.error;
  if (attempt.response !== null) view.response = attempt.response;
  return view;
}
