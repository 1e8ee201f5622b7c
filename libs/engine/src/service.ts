/**
 * The message API as a transport-neutral service: validation, permissions, id and slot
 * assignment, and the views clients see. The HTTP and gRPC exporters are thin layers over it, so
 * both answer every request with the same semantics and error codes.
 */
import { randomBytes } from 'node:crypto';
import type {
  AppQuotas,
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
  publicState,
  slotOf,
  uuidv7,
} from '@hourglass/core';
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
}

/**
 * Decides whether an app may insert `count` more messages. Checked after validation and before
 * the insert, for the whole request: a refused request (single or batch) persists nothing.
 */
export interface QuotaGate {
  /** Resolves when allowed; throws `rate_limited` (with retryAfterSeconds) or `unavailable`. */
  admit(app: AppIdentity, count: number): Promise<void>;
}

/** What clients see of a message. Times are ISO-8601 UTC. */
export interface MessageView {
  id: string;
  app: string;
  topic: string;
  key: string | null;
  slot: number;
  deliverAt: string;
  state: PublicMessageState;
  createdAt: string;
  deliveredAt?: string;
  attempts: number;
  lastError?: string;
}

export type ScheduleResult =
  | { readonly ok: true; readonly created: boolean; readonly message: MessageView }
  | { readonly ok: false; readonly error: HourglassError };

export function toView(message: StoredMessage): MessageView {
  const view: MessageView = {
    id: message.id,
    app: message.app,
    topic: message.topic,
    key: message.key,
    slot: message.slot,
    // isoTime: toISOString's string, cheaper (a batch answer formats 2000 of them).
    deliverAt: isoTime(message.deliverAtMs),
    state: publicState(message.state),
    createdAt: isoTime(message.createdAtMs),
    attempts: message.attempts,
  };
  if (message.state === 'delivered' && message.finishedAtMs !== null)
    view.deliveredAt = new Date(message.finishedAtMs).toISOString();
  if (message.lastError) view.lastError = message.lastError;
  return view;
}

export interface MessageServiceOptions {
  slotCount: number;
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
        if (!app.topics.has(request.topic)) {
          throw new HourglassError(
            'topic_not_allowed',
            `app "${app.name}" may not publish to topic "${request.topic}"`,
            [
              {
                path: `${pathPrefix ? `${pathPrefix}${index}/` : ''}topic`,
                message: 'not granted to this app',
              },
            ],
          );
        }
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
    if (!quotas) return global;
    return {
      ...global,
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
