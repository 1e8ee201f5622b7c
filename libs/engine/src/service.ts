/**
 * The message API as a transport-neutral service: validation, permissions, id and slot
 * assignment, and the views clients see. The HTTP and gRPC exporters are thin layers over it, so
 * both answer every request with the same semantics and error codes.
 */
import { randomBytes } from 'node:crypto';
import type {
  AppDeliveryConfig,
  AppQuotas,
  InsertOutcome,
  MessageLimits,
  NewMessage,
} from '@hourglass/core';
import {
  HourglassError,
  MESSAGE_ID_PATTERN,
  newMessageOf,
  parseBatch,
  parseScheduleRequest,
  callbackHost,
  hostAllowed,
  publicState,
  rearmFailed,
  slotOf,
  uuidv7,
} from '@hourglass/core';
import type { ScheduleRequest } from '@hourglass/core';
import type { MessageStore } from '@hourglass/core';
import type { Clock } from '@hourglass/core';
import type { DelayEngine } from './engine';
import type { EngineMetrics } from './metrics';
import { notScheduled, updateMessage } from './message-update';
import { hasDebounce, scheduleDebounced } from './debounce-schedule';
import type { AttemptView, MessageView } from './views';
import { toAttemptView, toView } from './views';

export type { AttemptView, MessageView, TargetView } from './views';
export { toView } from './views';

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

export type ScheduleResult =
  | { readonly ok: true; readonly created: boolean; readonly message: MessageView }
  | { readonly ok: false; readonly error: HourglassError };

/**
 * Every Kafka target's topic must be granted to the app, and every callback's host must be on the
 * app's allowlist when it has one.
 */
export function checkTargets(app: AppIdentity, request: ScheduleRequest, path: string): void {
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
    if (hasDebounce(body)) return this.scheduleDebounced(app, body);
    const [result] = await this.scheduleMany(app, [body], '');
    if (!result) throw new HourglassError('internal', 'no result for the message');
    if (!result.ok) throw result.error;
    return { created: result.created, message: result.message };
  }

  /** `schedule` with `debounce` (./debounce-schedule.ts); the view says `debounced`. */
  private async scheduleDebounced(
    app: AppIdentity,
    body: Record<string, unknown>,
  ): Promise<{ created: boolean; message: MessageView }> {
    const result = await scheduleDebounced(
      {
        engine: this.engine,
        clock: this.clock,
        limits: this.limitsFor(app),
        app: app.name,
        slotCount: this.options.slotCount,
        checkTargets: (request) => checkTargets(app, request, ''),
        admit: async () => this.options.quotas?.admit(app, 1),
      },
      body,
    );
    if (result.created) this.metrics.accepted(app.name, 1);
    else if (result.debounced) this.metrics.debounced(app.name);
    return {
      created: result.created,
      message: { ...toView(result.message), debounced: result.debounced },
    };
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
        if (hasDebounce(body))
          throw new HourglassError(
            'invalid_request',
            'debounce is not accepted in a batch: send debounced messages one by one to POST /v1/messages',
            [{ path: `${pathPrefix}${index}/debounce`, message: 'not in a batch' }],
          );
        const request = parseScheduleRequest(
          body,
          limits,
          now,
          pathPrefix ? `${pathPrefix}${index}/` : '',
        );
        checkTargets(app, request, pathPrefix ? `${pathPrefix}${index}/` : '');
        const id = request.id ?? uuidv7(now, randomBytes);
        accepted.push(
          newMessageOf(app.name, id, slotOf(app.name, id, this.options.slotCount), request),
        );
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
        throw notScheduled(id, outcome.message.state, 'cancelled');
    }
  }

  /**
   * Changes a scheduled message (PATCH /v1/messages/{id}; see ./message-update.ts). A success
   * guarantees the old version is never delivered. `ifMatch`: the versions the caller allows.
   */
  async update(
    app: AppIdentity,
    id: string,
    patch: unknown,
    ifMatch: 'any' | readonly number[] | null,
  ): Promise<MessageView> {
    this.checkId(id);
    const context = {
      store: this.store,
      engine: this.engine,
      clock: this.clock,
      limits: this.limitsFor(app),
      app: app.name,
      checkTargets: (request: ScheduleRequest) => checkTargets(app, request, ''),
    };
    const { message, rescheduled } = await updateMessage(context, id, patch, ifMatch);
    this.metrics.updated(app.name, rescheduled);
    return toView(message);
  }
}
