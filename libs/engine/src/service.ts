/**
 * The message API as a transport-neutral service: validation, permissions, id and slot
 * assignment, and the views clients see. The HTTP and gRPC exporters are thin layers over it, so
 * both answer every request with the same semantics and error codes.
 */
import { randomBytes } from 'node:crypto';
import type {
  AppDeliveryConfig,
  AppQuotas,
  RetryStrategy,
  TargetStatus,
  InsertOutcome,
  MessageLimits,
  NewMessage,
  PublicMessageState,
  StoredMessage,
} from '@hourglass/core';
import {
  HourglassError,
  MESSAGE_ID_PATTERN,
  isoTime,
  parseBatch,
  parseScheduleRequest,
  INITIAL_TARGET_STATE,
  callbackHost,
  hostAllowed,
  publicState,
  rearmFailed,
  slotOf,
  uuidv7,
} from '@hourglass/core';
import type { LoggedAttempt, ScheduleRequest } from '@hourglass/core';
import type { MessageStore } from '@hourglass/core';
import type { Clock } from '@hourglass/core';
import type { DelayEngine } from './engine';
import type { EngineMetrics } from './metrics';

/** An authenticated caller. */
export interface AppIdentity {
  readonly name: string;
  readonly topics: ReadonlySet<string>;
  /** App-specific limits (apps from Postgres); absent: only the global limits apply. */
  readonly quotas?: AppQuotas;
  /** Host allowlist and default retry strategy (apps from Postgres); absent: none. */
  readonly delivery?: AppDeliveryConfig;
}

/**
 * Decides whether an app may insert `count` more messages. Checked after validation and before
 * the insert, for the whole request: a refused request (single or batch) persists nothing.
 */
export interface QuotaGate {
  /** Resolves when allowed; throws `rate_limited` (with retryAfterSeconds) or `unavailable`. */
  admit(app: AppIdentity, count: number): Promise<void>;
}

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
}

export type ScheduleResult =
  | { readonly ok: true; readonly created: boolean; readonly message: MessageView }
  | { readonly ok: false; readonly error: HourglassError };

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

function toAttemptView(attempt: LoggedAttempt): AttemptView {
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

/**
 * Every Kafka target's topic must be granted to the app, and every callback's host must be on the
 * app's allowlist when it has one.
 */
function checkTargets(app: AppIdentity, request: ScheduleRequest, path: string): void {
  if (request.targets === null) {
    // The Kafka fast path (bulk scheduling's hot path): one topic, nothing to allocate.
    if (!app.topics.has(request.topic)) throw topicNotAllowed(app, request.topic, `${path}topic`);
    return;
  }
  request.targets.forEach((target, index) => {
    const at = request.targetsListed
      ? `targets/${index}/`
      : target.type === 'http'
        ? 'callback/'
        : '';
    if (target.type === 'kafka') {
      if (!app.topics.has(target.topic))
        throw topicNotAllowed(app, target.topic, `${path}${at}topic`);
      return;
    }
    const hosts = app.delivery?.callbackHosts;
    if (hosts && !hostAllowed(callbackHost(target), hosts))
      throw new HourglassError(
        'callback_not_allowed',
        `app "${app.name}" may not call back to host "${callbackHost(target)}"; an admin allows hosts with PATCH /v1/admin/apps/${app.name} {"delivery": {"callbackHosts": [...]}}`,
        [{ path: `${path}${at}url`, message: `allowed hosts: ${hosts.join(', ')}` }],
      );
  });
}

function topicNotAllowed(app: AppIdentity, topic: string, path: string): HourglassError {
  return new HourglassError(
    'topic_not_allowed',
    `app "${app.name}" may not publish to topic "${topic}"`,
    [{ path, message: 'not granted to this app' }],
  );
}

export interface MessageServiceOptions {
  slotCount: number;
  /** `limits.targets` enables callbacks and fan-out; `limits.retryBase` is the global default retry. */
  limits: MessageLimits;
  /** Rate and pending quotas. @default none: only the size and delay limits apply */
  quotas?: QuotaGate;
}

export class MessageService {
  constructor(
    private readonly engine: DelayEngine,
    private readonly store: MessageStore,
    private readonly clock: Clock,
    private readonly metrics: EngineMetrics,
    private readonly options: MessageServiceOptions,
  ) {}

  get limits(): MessageLimits {
    return this.options.limits;
  }

  /** Schedules one message; throws {@link HourglassError} for any refusal. */
  async schedule(
    app: AppIdentity,
    body: unknown,
  ): Promise<{ created: boolean; message: MessageView }> {
    const [result] = await this.scheduleMany(app, [body], '');
    if (!result) throw new HourglassError('internal', 'no result for the message');
    if (!result.ok) throw result.error;
    return { created: result.created, message: result.message };
  }

  /** Schedules a `{messages: [...]}` batch in one Postgres round trip; one result per input, in order. */
  async scheduleBatch(app: AppIdentity, body: unknown): Promise<ScheduleResult[]> {
    return this.scheduleMany(app, parseBatch(body, this.options.limits), 'messages/');
  }

  private async scheduleMany(
    app: AppIdentity,
    bodies: readonly unknown[],
    pathPrefix: string,
  ): Promise<ScheduleResult[]> {
    const now = this.clock.now();
    const results: Array<ScheduleResult | undefined> = new Array<ScheduleResult | undefined>(
      bodies.length,
    );
    const limits = this.limitsFor(app);
    const accepted: NewMessage[] = [];
    const positions: number[] = [];
    bodies.forEach((body, index) => {
      try {
        const request = parseScheduleRequest(
          body,
          limits,
          now,
          pathPrefix ? `${pathPrefix}${index}/` : '',
        );
        checkTargets(app, request, pathPrefix ? `${pathPrefix}${index}/` : '');
        const id = request.id ?? uuidv7(now, randomBytes);
        accepted.push({
          app: app.name,
          id,
          slot: slotOf(app.name, id, this.options.slotCount),
          topic: request.topic,
          key: request.key,
          payload: request.payload,
          payloadEncoding: request.payloadEncoding,
          headers: request.headers,
          deliverAtMs: request.deliverAtMs,
          fingerprint: request.fingerprint,
          targets: request.targets,
          retry: request.retry,
          contentType: request.contentType,
        });
        positions.push(index);
      } catch (error) {
        if (!(error instanceof HourglassError)) throw error;
        results[index] = { ok: false, error };
      }
    });
    if (accepted.length > 0) {
      // Throws for the whole request, before anything is written.
      await this.options.quotas?.admit(app, accepted.length);
      const outcomes = await this.engine.insert(accepted);
      let created = 0;
      outcomes.forEach((outcome, i) => {
        const position = positions[i];
        if (position === undefined) return;
        results[position] = this.toResult(outcome);
        if (outcome.kind === 'created') created++;
      });
      if (created > 0) this.metrics.accepted(app.name, created);
    }
    return results.map(
      (result) =>
        result ?? { ok: false, error: new HourglassError('internal', 'no result for the message') },
    );
  }

  /** The global limits, lowered by the app's own where it has them. */
  private limitsFor(app: AppIdentity): MessageLimits {
    const global = this.options.limits;
    const quotas = app.quotas;
    const retryBase = app.delivery?.retry ?? global.retryBase;
    if (!quotas) return retryBase === global.retryBase ? global : { ...global, retryBase };
    return {
      ...global,
      retryBase,
      maxPayloadBytes: Math.min(
        global.maxPayloadBytes,
        quotas.maxPayloadBytes ?? Number.POSITIVE_INFINITY,
      ),
      maxDelayMs: Math.min(global.maxDelayMs, quotas.maxDelayMs ?? Number.POSITIVE_INFINITY),
    };
  }

  private toResult(outcome: InsertOutcome): ScheduleResult {
    switch (outcome.kind) {
      case 'created':
        return { ok: true, created: true, message: toView(outcome.message) };
      case 'existing':
        return { ok: true, created: false, message: toView(outcome.message) };
      case 'conflict':
        return {
          ok: false,
          error: new HourglassError(
            'id_conflict',
            `message "${outcome.message.id}" already exists with different content`,
            [{ path: 'id', message: 'reuse an id only to re-send identical content' }],
          ),
        };
    }
  }

  private checkId(id: string): void {
    if (!MESSAGE_ID_PATTERN.test(id)) {
      throw new HourglassError(
        'invalid_request',
        'message ids are 1-128 characters of A-Z a-z 0-9 . _ : -',
        [{ path: 'id', message: 'invalid characters or length' }],
      );
    }
  }

  /** The attempt log of a message, oldest first (GET /v1/messages/{id}/attempts). */
  async attempts(app: AppIdentity, id: string): Promise<AttemptView[]> {
    this.checkId(id);
    const message = await this.store.get(app.name, id);
    if (!message) throw new HourglassError('not_found', `no message "${id}" for app "${app.name}"`);
    return (await this.store.listAttempts(app.name, id)).map(toAttemptView);
  }

  /**
   * Re-arms the failed targets of a failed message now, with a fresh attempt budget; delivered
   * targets are not sent again (POST /v1/messages/{id}/retry).
   */
  async retry(app: AppIdentity, id: string): Promise<MessageView> {
    this.checkId(id);
    const message = await this.store.get(app.name, id);
    if (!message) throw new HourglassError('not_found', `no message "${id}" for app "${app.name}"`);
    if (message.state !== 'failed')
      throw new HourglassError(
        'not_failed',
        `message "${id}" is ${publicState(message.state)}; only a failed message can be retried`,
      );
    const states = message.targetStates ? rearmFailed(message.targetStates) : null;
    const rearmed = await this.engine.rearm(app.name, id, states);
    if (!rearmed) {
      // Changed meanwhile (another retry won): answer with what it is now.
      const now = await this.store.get(app.name, id);
      if (now?.state === 'failed' || !now)
        throw new HourglassError('not_failed', `message "${id}" could not be re-armed; ask again`);
      return toView(now);
    }
    const after = await this.store.get(app.name, id);
    if (!after) throw new HourglassError('not_found', `no message "${id}" for app "${app.name}"`);
    return toView(after);
  }

  async get(app: AppIdentity, id: string): Promise<MessageView> {
    this.checkId(id);
    const message = await this.store.get(app.name, id);
    if (!message) throw new HourglassError('not_found', `no message "${id}" for app "${app.name}"`);
    return toView(message);
  }

  /**
   * A success guarantees the message is never delivered, even if it sits in a wheel right now: the
   * claim only takes scheduled messages. This node's wheel also lets go of it (the owner's, when
   * the owner is another node, keeps it until its due time, when it fires to nothing).
   */
  async cancel(app: AppIdentity, id: string): Promise<{ id: string; state: 'cancelled' }> {
    this.checkId(id);
    const outcome = await this.store.cancel(app.name, id, this.clock.now());
    switch (outcome.kind) {
      case 'cancelled':
        this.engine.forget(outcome.seq, outcome.message.deliverAtMs);
        this.metrics.cancelled(app.name);
        return { id, state: 'cancelled' };
      case 'not_found':
        throw new HourglassError('not_found', `no message "${id}" for app "${app.name}"`);
      case 'refused':
        switch (outcome.message.state) {
          case 'cancelled':
            throw new HourglassError('already_cancelled', `message "${id}" was already cancelled`);
          case 'failed':
            throw new HourglassError(
              'already_failed',
              `message "${id}" failed delivery and cannot be cancelled`,
            );
          // 'scheduled': still so after the store's retries, because claims keep winning the race.
          case 'delivering':
          case 'scheduled':
            throw new HourglassError(
              'delivery_in_progress',
              `message "${id}" is being delivered right now; ask again to learn whether it was delivered`,
            );
          case 'delivered':
            throw new HourglassError('already_delivered', `message "${id}" was already delivered`);
        }
    }
  }
}
