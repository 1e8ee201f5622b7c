/**
 * The delay engine of one node: it owns a set of slots, keeps every scheduled message of those
 * slots that is due within the horizon in a timing wheel, and fires due messages to Kafka in
 * batches. It talks to the world only through the ports in @hourglass/core.
 *
 * Invariants (docs/architecture.md explains why they hold):
 * - Completeness: for every owned slot, every scheduled message due before `loadedUntil` is in the
 *   wheel or will be put there by the insert path or a drained hint. The loader moves
 *   `loadedUntil` forward; slot acquisition loads [0, loadedUntil) for the new slot.
 * - Never early: the wheel only returns items whose due time has passed, and the store's claim
 *   re-checks `deliver_at <= now` in Postgres.
 * - Fenced: every claim and mark carries the slot's epoch; a node that lost a slot changes nothing.
 * - Nothing unacknowledged is marked delivered: marking happens only after Kafka acked the batch.
 */
import type {
  ClaimedMessage,
  InsertOutcome,
  MessageRef,
  MessageStore,
  NewMessage,
  Publisher,
  SlotLease,
  WheelItem,
} from '@hourglass/core';
import { PublishError, TimingWheel, messageKey } from '@hourglass/core';
import type { EngineMetrics } from './metrics';

export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface EngineOptions {
  horizonMs: number;
  loaderIntervalMs: number;
  hintDrainIntervalMs: number;
  fireBatchSize: number;
  fireConcurrency: number;
  maxAttempts: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export interface EngineDeps {
  store: MessageStore;
  publisher: Publisher;
  clock: Clock;
  logger: Logger;
  metrics: EngineMetrics;
  /**
   * Whether this node may still fire: false once its coordinator lease may have expired. Checked
   * right before producing, so a node resumed after a long pause fires nothing it no longer owns.
   */
  canFire?: () => boolean;
}

/** Extra reach of the wheel beyond the horizon, so hinted and freshly accepted messages fit. */
const WHEEL_SLACK_MS = 2 * 60_000;
/** Rows per loader query. */
const LOAD_PAGE = 5000;

function splitKey(item: WheelItem): MessageRef {
  const separator = item.key.indexOf('\u0000');
  return { app: item.key.slice(0, separator), id: item.key.slice(separator + 1), slot: item.slot };
}

export class DelayEngine {
  private readonly wheel: TimingWheel;
  /** slot → epoch of every slot this node owns and fires. */
  private readonly leases = new Map<number, number>();
  private loadedUntil: number;
  /** Loader steps (acquire, release, horizon moves) run one at a time: they share `loadedUntil`. */
  private loaderChain: Promise<void> = Promise.resolve();
  private readonly inFlight = new Set<Promise<void>>();
  private fireTimer: NodeJS.Timeout | undefined;
  private armedAtMs = Number.POSITIVE_INFINITY;
  private loaderTimer: NodeJS.Timeout | undefined;
  private hintTimer: NodeJS.Timeout | undefined;
  private drainRunning = false;
  private drainAgain = false;
  private consecutivePublishFailures = 0;
  private running = false;

  constructor(
    private readonly deps: EngineDeps,
    private readonly options: EngineOptions,
  ) {
    const now = deps.clock.now();
    this.wheel = new TimingWheel({ spanMs: options.horizonMs + WHEEL_SLACK_MS, startMs: now });
    this.loadedUntil = now + options.horizonMs;
    deps.metrics.observeEngine(() => ({
      wheelSize: this.wheel.size,
      ownedSlots: this.leases.size,
      loaderLagMs: Math.max(0, this.deps.clock.now() + this.options.horizonMs - this.loadedUntil),
      inFlightBatches: this.inFlight.size,
    }));
    deps.store.onHint((slot) => {
      if (this.running && this.leases.has(slot)) this.requestHintDrain();
    });
  }

  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.running = true;
    const now = this.deps.clock.now();
    this.loadedUntil = Math.max(this.loadedUntil, now + this.options.horizonMs);
    this.loaderTimer = setInterval(() => {
      // Failures are logged by the chain; the next interval tries the same window again.
      this.enqueueLoad(() => this.advanceHorizon()).catch(() => undefined);
    }, this.options.loaderIntervalMs);
    this.hintTimer = setInterval(() => this.requestHintDrain(), this.options.hintDrainIntervalMs);
    this.arm();
    return Promise.resolve();
  }

  /** Stops firing; resolves when in-flight batches finished. Slots stay owned (the coordinator releases them). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.loaderTimer);
    clearInterval(this.hintTimer);
    clearTimeout(this.fireTimer);
    this.fireTimer = undefined;
    await this.loaderChain;
    await Promise.allSettled([...this.inFlight]);
  }

  ownedSlots(): SlotLease[] {
    return [...this.leases].map(([slot, epoch]) => ({ slot, epoch }));
  }

  get heldMessages(): number {
    return this.wheel.size;
  }

  /**
   * Takes over slots whose ownership this node just won in the coordinator: raises their epochs in
   * the store (fencing out earlier owners), then loads their scheduled messages within the horizon.
   * Firing for the slots starts as soon as their leases are known, while the load is still paging.
   */
  acquireSlots(slots: readonly number[], minEpoch = 0): Promise<SlotLease[]> {
    return this.enqueueLoad(async () => {
      const fresh = slots.filter((slot) => !this.leases.has(slot));
      if (fresh.length === 0) return [];
      const leases = await this.deps.store.acquireSlots(fresh, minEpoch);
      for (const lease of leases) this.leases.set(lease.slot, lease.epoch);
      await this.loadRange(fresh, 0, this.loadedUntil);
      this.deps.logger.info({ slots: fresh.length, loadedUntil: this.loadedUntil }, 'slots acquired');
      return leases;
    });
  }

  /**
   * Stops firing slots (handed to another node): drops their wheel entries and waits until batches
   * that may include them finished, so the caller can release ownership knowing nothing of them is
   * still being produced.
   */
  releaseSlots(slots: readonly number[]): Promise<void> {
    return this.enqueueLoad(async () => {
      for (const slot of slots) {
        if (this.leases.delete(slot)) this.wheel.dropSlot(slot);
      }
      await Promise.allSettled([...this.inFlight]);
      this.deps.logger.info({ slots: slots.length }, 'slots released');
    });
  }

  /** Persists a batch and wheels what this node may fire itself. Outcomes are in input order. */
  async insert(messages: readonly NewMessage[]): Promise<InsertOutcome[]> {
    const now = this.deps.clock.now();
    const ownedEpochs = new Map(this.leases);
    const outcomes = await this.deps.store.insertBatch(messages, {
      ownedEpochs,
      hintBeforeMs: now + this.options.horizonMs + WHEEL_SLACK_MS / 2,
    });
    let wheeled = false;
    for (const outcome of outcomes) {
      if (outcome.kind !== 'created' || !outcome.wheelable) continue;
      const { app, id, slot, deliverAtMs } = outcome.message;
      // Re-check: the slot may have been released while the insert was in flight.
      if (this.leases.get(slot) !== ownedEpochs.get(slot)) continue;
      if (deliverAtMs < now + this.options.horizonMs + WHEEL_SLACK_MS) {
        this.wheel.insert({ key: messageKey(app, id), slot, dueMs: deliverAtMs });
        wheeled = true;
      }
    }
    if (wheeled) this.arm();
    return outcomes;
  }

  /** Forgets a cancelled message locally; the store's state is what guarantees it never fires. */
  forget(app: string, id: string): void {
    this.wheel.cancel(messageKey(app, id));
  }

  private enqueueLoad<T>(step: () => Promise<T>): Promise<T> {
    const result = this.loaderChain.then(step);
    this.loaderChain = result.then(
      () => undefined,
      (error: unknown) => this.deps.logger.error({ err: error }, 'loader step failed'),
    );
    return result;
  }

  /** Moves `loadedUntil` to now + horizon, loading the window it passes over. */
  private async advanceHorizon(): Promise<void> {
    if (!this.running) return;
    const until = this.deps.clock.now() + this.options.horizonMs;
    if (until <= this.loadedUntil) return;
    if (this.leases.size > 0) await this.loadRange([...this.leases.keys()], this.loadedUntil, until);
    this.loadedUntil = until;
  }

  private async loadRange(slots: readonly number[], fromMs: number, untilMs: number): Promise<void> {
    let after: WheelItem | undefined;
    for (;;) {
      const page = await this.deps.store.loadDue(slots, fromMs, untilMs, LOAD_PAGE, after);
      for (const item of page) {
        if (this.leases.has(item.slot)) this.wheel.insert(item);
      }
      if (page.length > 0) this.arm();
      if (page.length < LOAD_PAGE) return;
      after = page[page.length - 1];
    }
  }

  /** Coalesces hint notifications into one drain at a time, plus one more if more arrived meanwhile. */
  private requestHintDrain(): void {
    if (!this.running || this.leases.size === 0) return;
    if (this.drainRunning) {
      this.drainAgain = true;
      return;
    }
    this.drainRunning = true;
    void (async () => {
      try {
        do {
          this.drainAgain = false;
          const items = await this.deps.store.drainHints([...this.leases.keys()]);
          const horizonEnd = this.deps.clock.now() + this.options.horizonMs + WHEEL_SLACK_MS;
          for (const item of items) {
            if (this.leases.has(item.slot) && item.dueMs < horizonEnd) this.wheel.insert(item);
          }
          if (items.length > 0) this.arm();
        } while (this.drainAgain && this.running);
      } catch (error) {
        this.deps.logger.warn({ err: error }, 'draining wheel hints failed; retrying on the next interval');
      } finally {
        this.drainRunning = false;
      }
    })();
  }

  /** Sets the fire timer for the earliest due item, unless an earlier one is already set. */
  private arm(): void {
    if (!this.running) return;
    const next = this.wheel.nextDueMs();
    if (next === undefined || next >= this.armedAtMs) return;
    clearTimeout(this.fireTimer);
    this.armedAtMs = next;
    this.fireTimer = setTimeout(() => this.onFireTimer(), Math.max(0, next - this.deps.clock.now()));
  }

  private onFireTimer(): void {
    this.fireTimer = undefined;
    this.armedAtMs = Number.POSITIVE_INFINITY;
    this.pump();
  }

  /** Starts batches for everything due, up to the concurrency limit; re-arms for the rest. */
  private pump(): void {
    if (!this.running) return;
    while (this.inFlight.size < this.options.fireConcurrency) {
      const items = this.wheel.advance(this.deps.clock.now(), this.options.fireBatchSize);
      if (items.length === 0) break;
      const batch: Promise<void> = this.fireBatch(items)
        .catch((error: unknown) => this.deps.logger.error({ err: error }, 'fire batch failed'))
        .finally(() => {
          this.inFlight.delete(batch);
          this.pump();
        });
      this.inFlight.add(batch);
    }
    this.arm();
  }

  private retryDelayMs(): number {
    const exponent = Math.min(this.consecutivePublishFailures, 20);
    return Math.min(this.options.retryMaxMs, this.options.retryInitialMs * 2 ** exponent);
  }

  /** Puts items back to fire again later; the store keeps them scheduled meanwhile. */
  private retryLater(items: readonly { app: string; id: string; slot: number }[], delayMs: number): void {
    const dueMs = this.deps.clock.now() + delayMs;
    for (const item of items) {
      if (this.leases.has(item.slot)) this.wheel.insert({ key: messageKey(item.app, item.id), slot: item.slot, dueMs });
    }
    this.arm();
  }

  private async fireBatch(items: readonly WheelItem[]): Promise<void> {
    const leases = new Map<number, number>();
    const refs: MessageRef[] = [];
    for (const item of items) {
      const epoch = this.leases.get(item.slot);
      if (epoch === undefined) continue;
      leases.set(item.slot, epoch);
      refs.push(splitKey(item));
    }
    if (refs.length === 0) return;
    const canFire = this.deps.canFire ?? (() => true);
    if (!canFire()) {
      this.retryLater(refs, this.options.retryInitialMs);
      return;
    }
    let claimed: ClaimedMessage[];
    try {
      claimed = await this.deps.store.claim(refs, leases, this.deps.clock.now());
    } catch (error) {
      this.deps.logger.warn({ err: error, messages: refs.length }, 'claim failed; will retry');
      this.retryLater(refs, this.options.retryInitialMs);
      return;
    }
    if (claimed.length === 0) return;
    if (!canFire()) {
      // Ownership may have lapsed while claiming: produce nothing. The next owner resets the claims.
      this.retryLater(claimed, this.options.retryInitialMs);
      return;
    }
    try {
      await this.deps.publisher.publish(
        claimed.map((message) => ({
          topic: message.topic,
          key: message.key,
          value: message.payload,
          headers: {
            ...message.headers,
            'hourglass-id': message.id,
            'hourglass-app': message.app,
            'hourglass-deliver-at': String(message.deliverAtMs),
          },
        })),
      );
    } catch (error) {
      await this.onPublishFailure(claimed, leases, error);
      return;
    }
    this.consecutivePublishFailures = 0;
    const ackedAt = this.deps.clock.now();
    this.deps.metrics.delivered(claimed.map((message) => ackedAt - message.deliverAtMs));
    await this.markDelivered(claimed, leases, ackedAt);
  }

  private async onPublishFailure(
    claimed: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
    error: unknown,
  ): Promise<void> {
    const failure = error instanceof PublishError ? error : new PublishError(String(error), true);
    this.consecutivePublishFailures++;
    this.deps.metrics.publishFailed(failure.retriable);
    const delay = this.retryDelayMs();
    this.deps.logger.warn(
      { err: failure.message, retriable: failure.retriable, messages: claimed.length, retryInMs: delay },
      'produce to Kafka failed; messages stay scheduled',
    );
    // Retriable failures (Kafka down) never fail a message; only persistent errors count.
    const giveUp = failure.retriable ? [] : claimed.filter((message) => message.attempts >= this.options.maxAttempts);
    const retry = failure.retriable ? claimed : claimed.filter((message) => message.attempts < this.options.maxAttempts);
    const now = this.deps.clock.now();
    try {
      if (giveUp.length > 0) await this.deps.store.releaseClaims(giveUp, leases, failure.message, true, now);
      if (retry.length > 0) await this.deps.store.releaseClaims(retry, leases, failure.message, false, now);
    } catch (releaseError) {
      // Rows stay `delivering` under our epoch; the claim re-takes our own claims, so retrying is safe.
      this.deps.logger.warn({ err: releaseError }, 'releasing claims failed; retrying delivery anyway');
    }
    this.retryLater(retry, delay);
  }

  /**
   * Kafka acked; now record it. Retried on failure because a message left `delivering` would be
   * produced again by the next owner (at-least-once: consumers dedupe on `hourglass-id`).
   */
  private async markDelivered(
    claimed: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
    ackedAt: number,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.deps.store.markDelivered(claimed, leases, ackedAt);
        return;
      } catch (error) {
        if (attempt >= 10 || !this.running) {
          this.deps.logger.error({ err: error, messages: claimed.length }, 'marking delivered failed; they may be delivered again');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
  }
}
