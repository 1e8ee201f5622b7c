/**
 * Firing messages with a target list (HTTP callbacks, fan-out; docs/callbacks.md). For each
 * claimed message, every target that is due is attempted: Kafka targets of the whole batch in one
 * call of the Kafka delivery port, HTTP targets each as its own request. A message is settled as
 * soon as its own targets answered, so a receiver that hangs until its timeout holds back only
 * the messages that wait for it (and the HTTP caller's per-host bound keeps it from taking every
 * connection).
 *
 * Each attempt becomes the target's new state through core's `applyAttempt`; the message is
 * delivered when every target is, failed once every target finished with one failed, and
 * otherwise scheduled again at its earliest next attempt, durably (./settle-queue.ts).
 */
import type {
  AppDeliveryConfig,
  AttemptRecord,
  AttemptResult,
  ClaimedMessage,
  HttpTargetSpec,
  RetryStrategy,
  TargetSettlement,
  TargetState,
  TimingWheel,
} from '@hourglass/core';
import {
  DEFAULT_RETRY_STRATEGY,
  INITIAL_TARGET_STATE,
  NO_DELIVERY_CONFIG,
  applyAttempt,
  dueTargetIndexes,
  messageOutcome,
} from '@hourglass/core';
import type { EngineDeps, ResolvedOptions } from '../options';
import { callbackRequest, kafkaTargetMessage } from './callback-request';
import type { ClaimLedger } from './claims';
import type { AlertType } from './notices';
import { FailureNotices } from './notices';
import { SettleQueue } from './settle-queue';

export interface TargetFiringParts {
  readonly deps: EngineDeps;
  readonly options: ResolvedOptions;
  readonly ledger: ClaimLedger;
  readonly wheel: TimingWheel;
  readonly epochOf: (slot: number) => number | undefined;
  readonly reach: () => number;
  readonly active: () => boolean;
  readonly wake: () => void;
  readonly sleep: (ms: number) => Promise<void>;
}

interface AttemptOutcome {
  readonly index: number;
  readonly result: AttemptResult;
  /** null when nothing was sent (no attempt to log). */
  readonly record: AttemptRecord | null;
}

/** What the app's settings give a round: its secrets and config, or an outage reason. */
interface AppContext {
  readonly secrets: readonly string[];
  readonly config: AppDeliveryConfig;
  readonly unavailable: string | null;
}

const NO_APP: AppContext = { secrets: [], config: NO_DELIVERY_CONFIG, unavailable: null };

export class TargetFiring {
  private inFlight = 0;
  private readonly settles: SettleQueue;
  private readonly notices: FailureNotices;

  constructor(private readonly parts: TargetFiringParts) {
    const { deps } = parts;
    this.settles = new SettleQueue({
      store: deps.store,
      logger: deps.logger,
      ledger: parts.ledger,
      wheel: parts.wheel,
      now: () => deps.clock.now(),
      epochOf: parts.epochOf,
      reach: parts.reach,
      active: parts.active,
      wake: parts.wake,
      sleep: parts.sleep,
    });
    this.notices = new FailureNotices({
      delivery: deps.delivery,
      http: deps.http,
      logger: deps.logger,
      metrics: deps.metrics,
      now: () => deps.clock.now(),
    });
  }

  /** Messages with a target list being delivered right now. */
  get messagesInFlight(): number {
    return this.inFlight;
  }

  /**
   * Delivers the due targets of each message and settles each message once its targets answered.
   * `inline`: the caller holds the store's epoch lock, and settling must happen before it is let go.
   */
  async fire(
    messages: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
    inline = false,
  ): Promise<void> {
    if (messages.length === 0) return;
    this.inFlight += messages.length;
    try {
      const apps = await this.appContexts(messages);
      const startedAt = this.parts.deps.clock.now();
      const attempts = messages.map((message) =>
        dueTargetIndexes(statesOf(message), startedAt).map(
          (index) => ({ message, index }) as const,
        ),
      );
      const kafka = this.attemptKafka(attempts.flat(), startedAt);
      const settlements = await Promise.all(
        messages.map(async (message, position) => {
          const app = apps.get(message.app) ?? NO_APP;
          const due = attempts[position] ?? [];
          const outcomes = await Promise.all(
            due.map(({ index }) => {
              const target = message.targets?.[index];
              if (target?.type === 'http') return this.attemptHttp(message, index, target, app);
              return kafka.then((results) => results.get(keyOf(message, index)) ?? missing(index));
            }),
          );
          const settlement = await this.conclude(message, outcomes, app);
          if (!inline) await this.settles.add(settlement, leases);
          return settlement;
        }),
      );
      if (inline && !(await this.settles.settleNow(settlements, leases)))
        await Promise.all(settlements.map((settlement) => this.settles.add(settlement, leases)));
    } finally {
      this.inFlight -= messages.length;
    }
  }

  private async appContexts(messages: readonly ClaimedMessage[]): Promise<Map<string, AppContext>> {
    const source = this.parts.deps.appDelivery;
    const contexts = new Map<string, AppContext>();
    if (!source) return contexts;
    const names = [...new Set(messages.map((message) => message.app))];
    await Promise.all(
      names.map(async (app) => {
        try {
          const [secrets, config] = await Promise.all([
            source.signingSecrets(app),
            source.config(app),
          ]);
          contexts.set(app, { secrets, config, unavailable: null });
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          contexts.set(app, {
            ...NO_APP,
            unavailable: `the app's signing secret could not be read: ${reason}`,
          });
        }
      }),
    );
    return contexts;
  }

  /** One call of the Kafka port for every due Kafka target of the batch. */
  private async attemptKafka(
    due: ReadonlyArray<{ message: ClaimedMessage; index: number }>,
    startedAt: number,
  ): Promise<Map<string, AttemptOutcome>> {
    const results = new Map<string, AttemptOutcome>();
    const items = due.filter(({ message, index }) => message.targets?.[index]?.type === 'kafka');
    if (items.length === 0) return results;
    const records = items.map(({ message, index }) => {
      const target = message.targets![index]!;
      if (target.type !== 'kafka') throw new Error('unreachable');
      return kafkaTargetMessage(message, target.topic, target.key, target.headers);
    });
    let outcomes;
    try {
      outcomes = await this.parts.deps.delivery.deliver(records);
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      outcomes = records.map(() => ({
        kind: 'failed' as const,
        target: 'kafka',
        error: text,
        retriable: true,
      }));
    }
    const durationMs = this.parts.deps.clock.now() - startedAt;
    items.forEach(({ message, index }, position) => {
      const outcome = outcomes[position];
      const ok = outcome?.kind === 'delivered';
      const error = ok ? null : outcome?.kind === 'failed' ? outcome.error : 'no outcome';
      const outage = !ok && (outcome?.kind !== 'failed' || outcome.retriable);
      results.set(keyOf(message, index), {
        index,
        result: { ok, outage, error, status: null, retryAfterMs: null, gone: false },
        record: {
          target: index,
          attempt: (statesOf(message)[index]?.attempts ?? 0) + 1,
          atMs: startedAt,
          durationMs,
          status: null,
          error,
          response: null,
        },
      });
    });
    return results;
  }

  private async attemptHttp(
    message: ClaimedMessage,
    index: number,
    target: HttpTargetSpec,
    app: AppContext,
  ): Promise<AttemptOutcome> {
    const { deps } = this.parts;
    const attempt = (statesOf(message)[index]?.attempts ?? 0) + 1;
    const startedAt = deps.clock.now();
    const record = (
      error: string | null,
      status: number | null,
      durationMs: number,
      response: string | null,
    ): AttemptRecord => ({
      target: index,
      attempt,
      atMs: startedAt,
      durationMs,
      status,
      error,
      response,
    });
    if (app.unavailable !== null) {
      // Postgres is out: nothing was sent, so the attempt does not count.
      return {
        index,
        result: {
          ok: false,
          outage: true,
          error: app.unavailable,
          status: null,
          retryAfterMs: null,
          gone: false,
        },
        record: null,
      };
    }
    if (!deps.http) {
      const error = 'HTTP callbacks are not enabled on this node';
      return {
        index,
        result: { ok: false, outage: false, error, status: null, retryAfterMs: null, gone: false },
        record: record(error, null, 0, null),
      };
    }
    const request = callbackRequest(message, target, index, attempt, app.secrets, startedAt);
    const answer = await deps.http.call(request);
    deps.metrics.callbackAttempt(
      message.app,
      answer.ok ? 'delivered' : answer.gone ? 'gone' : 'failed',
      answer.durationMs / 1000,
    );
    if (answer.ok) deps.metrics.callbackAnswered(deps.clock.now() - message.deliverAtMs);
    return {
      index,
      result: {
        ok: answer.ok,
        outage: false,
        error: answer.error,
        status: answer.status,
        retryAfterMs: answer.retryAfterMs,
        gone: answer.gone,
      },
      record: record(answer.error, answer.status, answer.durationMs, answer.responseSnippet),
    };
  }

  /** The message's new target states and what it becomes; dead letters and alerts on the way. */
  private async conclude(
    message: ClaimedMessage,
    outcomes: readonly AttemptOutcome[],
    app: AppContext,
  ): Promise<TargetSettlement> {
    const { deps, options } = this.parts;
    const now = deps.clock.now();
    const strategy: RetryStrategy = message.retry ?? DEFAULT_RETRY_STRATEGY;
    const states: TargetState[] = [...statesOf(message)];
    let counted = 0;
    let lastError: string | null = null;
    const alerts: Array<{ type: AlertType; index: number }> = [];
    const deadLetters: number[] = [];
    const afterAttempts = app.config.alerts?.afterAttempts;
    for (const { index, result } of outcomes) {
      const previous = states[index] ?? INITIAL_TARGET_STATE;
      const transition = applyAttempt(previous, result, {
        nowMs: now,
        strategy,
        outageDelayMs: options.probeMaxMs,
      });
      let state = transition.state;
      if (transition.counted) counted++;
      if (!result.ok) lastError = result.error;
      if (
        !result.ok &&
        transition.counted &&
        afterAttempts !== undefined &&
        !state.alerted &&
        state.attempts >= afterAttempts &&
        !transition.finallyFailed
      ) {
        state = { ...state, alerted: true };
        alerts.push({ type: 'callback.retrying', index });
      }
      if (transition.finallyFailed) {
        deadLetters.push(index);
        alerts.push({ type: 'callback.failed', index });
        if (message.targets?.[index]?.type === 'http') deps.metrics.callbackFailed(message.app);
      }
      states[index] = state;
    }
    for (const index of deadLetters) {
      const target = message.targets?.[index];
      const state = states[index];
      if (target && state)
        await this.notices
          .deadLetter(message, target, state.attempts, state.lastError ?? 'failed', app.config)
          .catch((error: unknown) =>
            deps.logger.warn({ err: error, id: message.id }, 'dead letter failed'),
          );
    }
    for (const { type, index } of alerts) {
      const target = message.targets?.[index];
      const state = states[index];
      if (target && state)
        void this.notices.alert(
          type,
          message,
          index,
          target,
          state.attempts,
          state.lastError,
          app.config,
          app.secrets,
        );
    }
    const outcome = messageOutcome(states, now);
    if (outcome.kind === 'delivered') deps.metrics.delivered([message], now);
    if (outcome.kind === 'failed') deps.metrics.failed([message]);
    return {
      ref: { seq: message.seq, slot: message.slot },
      state: outcome.kind === 'pending' ? 'scheduled' : outcome.kind,
      deliverAtMs:
        outcome.kind === 'pending' ? Math.max(outcome.nextAtMs, now) : message.deliverAtMs,
      targetStates: states,
      countedAttempts: counted,
      lastError,
      attempts: outcomes.flatMap((outcome) => (outcome.record ? [outcome.record] : [])),
    };
  }
}

function statesOf(message: ClaimedMessage): readonly TargetState[] {
  return message.targetStates ?? (message.targets ?? []).map(() => INITIAL_TARGET_STATE);
}

function keyOf(message: ClaimedMessage, index: number): string {
  return `${message.seq}:${index}`;
}

/** A Kafka target the port gave no outcome for: an outage, retried uncounted; nothing to log. */
function missing(index: number): AttemptOutcome {
  return {
    index,
    result: {
      ok: false,
      outage: true,
      error: 'no outcome',
      status: null,
      retryAfterMs: null,
      gone: false,
    },
    record: null,
  };
}
