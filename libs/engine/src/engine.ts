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
  Clock,
  Logger,
  InsertOutcome,
  MessageRef,
  MessageStore,
  NewMessage,
  Publisher,
  SlotLease,
  WheelItem,
} from '@hourglass/core';
import { PublishError, TimingWheel } from '@hourglass/core';
import type { EngineMetrics } from './metrics';


export interface EngineOptions {
  horizonMs: number;
  loaderIntervalMs: number;
  hintDrainIntervalMs: number;
  fireBatchSize: number;
  fireConcurrency: number;
  /**
   * How long before its due time a message is claimed, so that at the due time only the produce
   * is left. A cancel in this window gets `already_delivered`. 0 claims at the due time.
   * @default 25
   */
  claimAheadMs?: number;
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
/** Most messages marked delivered by one statement when acks pile up. */
const MARK_FLUSH_LIMIT = 20_000;
const DEFAULT_CLAIM_AHEAD_MS = 25;

/** A claimed batch waiting for its messages' due times, in due order from `next` on. */
interface HeldBatch {
  messages: ClaimedMessage[];
  next: number;
  leases: ReadonlyMap<number, number>;
}

interface PendingMark {
  /** Refs only: the payloads can go once Kafka has them. */
  refs: readonly MessageRef[];
  leases: ReadonlyMap<number, number>;
  ackedAt: number;
}

function toRef(item: WheelItem): MessageRef {
  return { seq: item.seq, slot: item.slot };
}

export class DelayEngine {
  private readonly wheel: TimingWheel;
  /** slot → epoch of every slot this node owns and fires. */
  private readonly leases = new Map<number, number>();
  private loadedUntil: number;
  /** The highest `untilMs` a load has started with (it may still be paging, or have failed). */
  private loadingUntil = Number.NEGATIVE_INFINITY;
  /** Loader steps (acquire, release, horizon moves) run one at a time: they share `loadedUntil`. */
  private loaderChain: Promise<void> = Promise.resolve();
  /** Fire batches under way; releasing slots and stopping wait for them. */
  private readonly inFlight = new Set<Promise<void>>();
  /**
   * Claims under way. One at a time while firing keeps up: due messages then pile up into the next,
   * larger batch instead of many small claims queueing on Postgres commits. With a backlog (the
   * last batch taken was full: a burst, or catching up) up to `fireConcurrency` run at once, so
   * Postgres works them in parallel.
   */
  private claimingBatches = 0;
  private backlogged = false;
  /** Claimed messages not yet produced, per claim, and their count (bounded by `heldLimit`). */
  private held: HeldBatch[] = [];
  private heldCount = 0;
  /** Whether a produce is under way: one at a time, so messages due meanwhile go in the next one. */
  private publishing = false;
  /**
   * Seqs claimed by this node and not yet marked or released. After a claim whose outcome is
   * unknown (the connection broke), every other message of its batch is released: none of those
   * can be in flight here.
   */
  private readonly ownClaims = new Set<number>();
  /** Set by stop(): no more claims, but what is claimed is still produced. */
  private draining = false;
  /** Acked batches waiting to be marked delivered, in one statement per flush. */
  private pendingMarks: PendingMark[] = [];
  private pendingMarkRefs = 0;
  private markFlush: Promise<void> | undefined;
  /** Marks enqueued and marks flushed (or given up) so far: lets a release wait for just its own. */
  private marksEnqueued = 0;
  private marksFlushed = 0;
  private markWaiters: Array<{ upTo: number; resolve: () => void }> = [];
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
    // First drain: no new claims, but what is claimed (due within claimAheadMs) is produced at its
    // due time, or released if producing fails.
    this.draining = true;
    clearInterval(this.loaderTimer);
    clearInterval(this.hintTimer);
    while (this.inFlight.size > 0 || this.heldCount > 0) {
      if (this.inFlight.size === 0) {
        // Held messages not due yet: wait for the earliest (at most claimAheadMs away).
        const waitMs = (this.nextHeldDueMs() ?? 0) - this.deps.clock.now();
        await new Promise((resolve) => setTimeout(resolve, Math.max(1, waitMs)));
        this.pump();
        continue;
      }
      await Promise.allSettled([...this.inFlight]);
    }
    this.running = false;
    clearTimeout(this.fireTimer);
    this.fireTimer = undefined;
    await this.loaderChain;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    this.startMarkFlush();
    await this.markFlush;
  }

  /**
   * Waits for the batches under way now, then for every mark enqueued by then: a released slot's
   * messages must be marked delivered before its next owner resets what is still delivering.
   */
  private async settleFiring(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    const upTo = this.marksEnqueued;
    if (this.marksFlushed >= upTo) return;
    this.startMarkFlush();
    await new Promise<void>((resolve) => this.markWaiters.push({ upTo, resolve }));
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
      this.deps.logger.info(
        { slots: fresh.length, loadedUntil: this.loadedUntil },
        'slots acquired',
      );
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
      const released = new Set<number>();
      for (const slot of slots) {
        if (this.leases.delete(slot)) released.add(slot);
      }
      this.wheel.dropSlots(released);
      await this.dropHeld(released);
      await this.settleFiring();
      this.deps.logger.info({ slots: slots.length }, 'slots released');
    });
  }

  /**
   * Forgets claimed-but-unproduced messages of released slots and puts them back to `scheduled`
   * under their old epoch, so the next owner fires them (its takeover would reset them anyway).
   */
  private async dropHeld(slots: ReadonlySet<number>): Promise<void> {
    if (slots.size === 0) return;
    const dropped: ClaimedMessage[] = [];
    const leases = new Map<number, number>();
    for (const batch of this.held) {
      const keep: ClaimedMessage[] = [];
      for (let i = batch.next; i < batch.messages.length; i++) {
        const message = batch.messages[i]!;
        if (!slots.has(message.slot)) {
          keep.push(message);
          continue;
        }
        dropped.push(message);
        const epoch = batch.leases.get(message.slot);
        if (epoch !== undefined) leases.set(message.slot, epoch);
      }
      batch.messages = keep;
      batch.next = 0;
    }
    this.held = this.held.filter((batch) => batch.messages.length > 0);
    this.heldCount -= dropped.length;
    for (const message of dropped) this.ownClaims.delete(message.seq);
    if (dropped.length === 0) return;
    try {
      await this.deps.store.releaseClaims(
        dropped,
        leases,
        'slot handed over before its due time',
        false,
        this.deps.clock.now(),
      );
    } catch (error) {
      this.deps.logger.warn(
        { err: error, messages: dropped.length },
        'releasing claims of released slots failed; the next owner resets them',
      );
    }
  }

  /**
   * Drops a message the store has just cancelled from the wheel: every copy held under its due
   * time (see TimingWheel.cancel for the cost). A copy re-wheeled for a retry sits under another
   * due time and stays; like any cancelled message still in the wheel it fires to nothing, since
   * the claim skips cancelled rows. Returns how many copies were removed (0 when not held here).
   */
  forget(seq: number, deliverAtMs: number): number {
    return this.wheel.cancel(seq, deliverAtMs);
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
    const reach = this.loadReach();
    for (const outcome of outcomes) {
      if (outcome.kind !== 'created' || !outcome.wheelable) continue;
      const { slot, deliverAtMs } = outcome.message;
      // Re-check: the slot may have been released while the insert was in flight.
      if (this.leases.get(slot) !== ownedEpochs.get(slot)) continue;
      // Beyond the loader's reach, a load that starts later (after our commit) wheels it.
      if (deliverAtMs < reach) {
        this.wheel.insert({ seq: outcome.seq, slot, dueMs: deliverAtMs });
        wheeled = true;
      }
    }
    if (wheeled) this.arm();
    return outcomes;
  }

  /**
   * How far the loads reach: no load has covered a due time at or after it, and the loads that
   * start from now on (after the caller's commit, so they see its rows) cover every due time from
   * `loadedUntil` on as the horizon moves. So the insert and hint paths need not wheel a message
   * due at or after it, and do not: the wheel does not deduplicate, and a message wheeled twice
   * costs its memory twice (firing it twice is harmless: the claim takes it once).
   */
  private loadReach(): number {
    return Math.max(this.loadedUntil, this.loadingUntil);
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
    if (this.leases.size > 0)
      await this.loadRange([...this.leases.keys()], this.loadedUntil, until);
    this.loadedUntil = until;
  }

  private async loadRange(
    slots: readonly number[],
    fromMs: number,
    untilMs: number,
  ): Promise<void> {
    // Before the first query: from here on, inserts committing now are wheeled up to untilMs.
    this.loadingUntil = Math.max(this.loadingUntil, untilMs);
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
          // A hint due beyond the loads' reach is left to the loader (see loadReach).
          const reach = this.loadReach();
          for (const item of items) {
            if (this.leases.has(item.slot) && item.dueMs < reach) this.wheel.insert(item);
          }
          if (items.length > 0) this.arm();
        } while (this.drainAgain && this.running);
      } catch (error) {
        this.deps.logger.warn(
          { err: error },
          'draining wheel hints failed; retrying on the next interval',
        );
      } finally {
        this.drainRunning = false;
      }
    })();
  }

  /** Sets the fire timer for the earliest due item, unless an earlier one is already set. */
  private arm(): void {
    if (!this.running) return;
    // What cannot start now is started by the claim or produce that finishes first; a timer
    // would only spin until then.
    const heldDue = this.publishing ? undefined : this.nextHeldDueMs();
    const wheelDue = this.canClaim() ? this.wheel.nextDueMs() : undefined;
    const claimAt = wheelDue === undefined ? undefined : wheelDue - this.claimAheadMs;
    const next =
      heldDue === undefined
        ? claimAt
        : claimAt === undefined
          ? heldDue
          : Math.min(heldDue, claimAt);
    if (next === undefined || next >= this.armedAtMs) return;
    clearTimeout(this.fireTimer);
    this.armedAtMs = next;
    this.fireTimer = setTimeout(
      () => this.onFireTimer(),
      Math.max(0, next - this.deps.clock.now()),
    );
  }

  private onFireTimer(): void {
    this.fireTimer = undefined;
    this.armedAtMs = Number.POSITIVE_INFINITY;
    this.pump();
  }

  private get claimAheadMs(): number {
    return this.options.claimAheadMs ?? DEFAULT_CLAIM_AHEAD_MS;
  }

  private get heldLimit(): number {
    return this.options.fireBatchSize * this.options.fireConcurrency;
  }

  private canClaim(): boolean {
    const claimLimit = this.backlogged ? this.options.fireConcurrency : 1;
    return !this.draining && this.claimingBatches < claimLimit && this.heldCount < this.heldLimit;
  }

  /**
   * Moves messages along: produces the claimed ones that are due, claims those coming due within
   * `claimAheadMs`, and sets the timer for whatever comes next.
   */
  private pump(): void {
    if (!this.running) return;
    if (!this.publishing) this.startPublish();
    while (this.canClaim()) {
      const items = this.wheel.advance(
        this.deps.clock.now() + this.claimAheadMs,
        this.options.fireBatchSize,
      );
      this.backlogged = items.length === this.options.fireBatchSize;
      if (items.length === 0) break;
      this.track(
        this.claimBatch(items).catch((error: unknown) =>
          this.deps.logger.error({ err: error }, 'claim failed'),
        ),
      );
    }
    // After the claims: the loop may just have found the backlog over, and marks held back during
    // it must go now, since no further ack may come to flush them.
    if (!this.backlogged || this.draining) this.startMarkFlush();
    this.arm();
  }

  private track(work: Promise<void>): void {
    const tracked = work.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private retryDelayMs(): number {
    const exponent = Math.min(this.consecutivePublishFailures, 20);
    return Math.min(this.options.retryMaxMs, this.options.retryInitialMs * 2 ** exponent);
  }

  /**
   * Puts items back to fire again later. Only for messages the store has `scheduled`: the claim
   * takes nothing else, so a message still `delivering` would fire to nothing.
   */
  private retryLater(items: readonly MessageRef[], delayMs: number): void {
    // The claim comes claimAheadMs before the wheel's due time, and a message that is due already
    // is produced right after it: so it is the claim that has to wait delayMs.
    const dueMs = this.deps.clock.now() + delayMs + this.claimAheadMs;
    for (const item of items) {
      if (this.leases.has(item.slot)) this.wheel.insert({ seq: item.seq, slot: item.slot, dueMs });
    }
    this.arm();
  }

  /** Claims messages coming due and holds them until their due time. */
  private async claimBatch(items: readonly WheelItem[]): Promise<void> {
    this.claimingBatches++;
    try {
      const leases = new Map<number, number>();
      const refs: MessageRef[] = [];
      for (const item of items) {
        const epoch = this.leases.get(item.slot);
        if (epoch === undefined) continue;
        leases.set(item.slot, epoch);
        refs.push(toRef(item));
      }
      if (refs.length === 0) return;
      if (!(this.deps.canFire?.() ?? true)) {
        this.retryLater(refs, this.options.retryInitialMs);
        return;
      }
      let claimed: ClaimedMessage[];
      try {
        // The store takes only messages due by then; producing waits for each one's due time.
        const started = performance.now();
        claimed = await this.deps.store.claim(
          refs,
          leases,
          this.deps.clock.now() + this.claimAheadMs,
        );
        this.deps.metrics.fireStage('claim', performance.now() - started, claimed.length);
      } catch (error) {
        await this.recoverFromFailedClaim(refs, leases, error);
        return;
      }
      if (claimed.length === 0) return;
      // A slot released while claiming: its claims are the next owner's to reset.
      const kept = claimed.filter(
        (message) => this.leases.get(message.slot) === leases.get(message.slot),
      );
      if (kept.length === 0) return;
      for (const message of kept) this.ownClaims.add(message.seq);
      kept.sort((a, b) => a.deliverAtMs - b.deliverAtMs);
      this.held.push({ messages: kept, next: 0, leases });
      this.heldCount += kept.length;
    } finally {
      this.claimingBatches--;
      this.pump();
    }
  }

  /**
   * The claim may have committed although it failed here. Messages of the batch that this node
   * has not claimed otherwise are put back to `scheduled` (fenced: nothing of another owner is
   * touched) before they are wheeled again, or they would stay `delivering`.
   */
  private async recoverFromFailedClaim(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    error: unknown,
  ): Promise<void> {
    this.deps.logger.warn({ err: error, messages: refs.length }, 'claim failed; will retry');
    const unknown = refs.filter((ref) => !this.ownClaims.has(ref.seq));
    const released = await this.releaseUntilDone(
      unknown,
      leases,
      'claim outcome unknown',
      false,
      this.deps.clock.now(),
    );
    if (released) this.retryLater(unknown, this.options.retryInitialMs);
  }

  /** Takes the held messages due by now, up to `heldLimit`, with their leases merged. */
  private takeDueHeld(nowMs: number): { messages: ClaimedMessage[]; leases: Map<number, number> } {
    const messages: ClaimedMessage[] = [];
    const leases = new Map<number, number>();
    for (const batch of this.held) {
      const start = batch.next;
      while (batch.next < batch.messages.length && messages.length < this.heldLimit) {
        const message = batch.messages[batch.next]!;
        if (message.deliverAtMs > nowMs) break;
        messages.push(message);
        batch.next++;
      }
      if (batch.next > start) for (const [slot, epoch] of batch.leases) leases.set(slot, epoch);
    }
    this.held = this.held.filter((batch) => batch.next < batch.messages.length);
    this.heldCount -= messages.length;
    return { messages, leases };
  }

  private nextHeldDueMs(): number | undefined {
    let next: number | undefined;
    for (const batch of this.held) {
      const due = batch.messages[batch.next]?.deliverAtMs;
      if (due !== undefined && (next === undefined || due < next)) next = due;
    }
    return next;
  }

  /** Produces every held message that is due, as one request; the next starts when it is acked. */
  private startPublish(): void {
    const { messages, leases } = this.takeDueHeld(this.deps.clock.now());
    if (messages.length === 0) return;
    this.publishing = true;
    this.track(
      this.publishHeld(messages, leases)
        .catch((error: unknown) => this.deps.logger.error({ err: error }, 'fire batch failed'))
        .finally(() => {
          this.publishing = false;
          this.pump();
        }),
    );
  }

  private async publishHeld(
    claimed: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
  ): Promise<void> {
    if (!(this.deps.canFire?.() ?? true)) {
      // Ownership may have lapsed since the claim: produce nothing. A next owner would reset the
      // claims, but our lease may recover, so put them back (fenced) before re-wheeling.
      const error = 'not produced: slot ownership was uncertain';
      if (await this.releaseUntilDone(claimed, leases, error, false, this.deps.clock.now())) {
        this.retryLater(claimed, this.options.retryInitialMs);
      }
      return;
    }
    const started = performance.now();
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
    this.deps.metrics.fireStage('produce', performance.now() - started, claimed.length);
    const ackedAt = this.deps.clock.now();
    this.deps.metrics.delivered(claimed.map((message) => ackedAt - message.deliverAtMs));
    this.enqueueMark({
      refs: claimed.map((message) => ({ seq: message.seq, slot: message.slot })),
      leases,
      ackedAt,
    });
  }

  /**
   * Marking is off the latency path: consumers already have the messages. Acks that arrive while a
   * mark runs are merged into the next statement, so a burst costs few commits. While a backlog
   * is being fired, marks wait (up to {@link MARK_FLUSH_LIMIT} messages) so that Postgres spends
   * its time on the claims that delivery waits for.
   */
  private enqueueMark(mark: PendingMark): void {
    this.pendingMarks.push(mark);
    this.pendingMarkRefs += mark.refs.length;
    this.marksEnqueued++;
    if (this.backlogged && this.pendingMarkRefs < MARK_FLUSH_LIMIT && !this.draining) return;
    this.startMarkFlush();
  }

  private startMarkFlush(): void {
    if (this.pendingMarks.length === 0) return;
    this.markFlush ??= this.flushMarks().finally(() => {
      this.markFlush = undefined;
    });
  }

  private async flushMarks(): Promise<void> {
    while (this.pendingMarks.length > 0) {
      const group = this.takeMarkGroup();
      this.pendingMarkRefs -= group.refs.length;
      const started = performance.now();
      await this.markDelivered(group.refs, group.leases, group.ackedAt);
      this.deps.metrics.fireStage('mark', performance.now() - started, group.refs.length);
      for (const message of group.refs) this.ownClaims.delete(message.seq);
      this.marksFlushed += group.marks;
      this.markWaiters = this.markWaiters.filter((waiter) => {
        if (waiter.upTo > this.marksFlushed) return true;
        waiter.resolve();
        return false;
      });
    }
  }

  /** Takes pending marks from the front while their leases agree (a slot re-acquired has a new epoch). */
  private takeMarkGroup(): PendingMark & { marks: number } {
    const refs: MessageRef[] = [];
    const leases = new Map<number, number>();
    let ackedAt = 0;
    let marks = 0;
    while (this.pendingMarks.length > 0) {
      const next = this.pendingMarks[0]!;
      const conflicts = [...next.leases].some(
        ([slot, epoch]) => (leases.get(slot) ?? epoch) !== epoch,
      );
      if (marks > 0 && (conflicts || refs.length + next.refs.length > MARK_FLUSH_LIMIT)) break;
      this.pendingMarks.shift();
      marks++;
      for (const ref of next.refs) refs.push(ref);
      for (const [slot, epoch] of next.leases) leases.set(slot, epoch);
      ackedAt = Math.max(ackedAt, next.ackedAt);
    }
    return { refs, leases, ackedAt, marks };
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
      {
        err: failure.message,
        retriable: failure.retriable,
        messages: claimed.length,
        retryInMs: delay,
      },
      'produce to Kafka failed; messages stay scheduled',
    );
    // Retriable failures (Kafka down) never fail a message; only persistent errors count.
    const giveUp = failure.retriable
      ? []
      : claimed.filter((message) => message.attempts >= this.options.maxAttempts);
    const retry = failure.retriable
      ? claimed
      : claimed.filter((message) => message.attempts < this.options.maxAttempts);
    const now = this.deps.clock.now();
    if (giveUp.length > 0) await this.releaseUntilDone(giveUp, leases, failure.message, true, now);
    // Re-wheel only once the rows are `scheduled` again: the claim takes nothing else.
    const released = await this.releaseUntilDone(retry, leases, failure.message, false, now);
    if (released) this.retryLater(retry, delay);
  }

  /**
   * releaseClaims, retried with backoff until it succeeds (true). Gives up (false) once the node
   * stops or holds none of the batch's slots under the batch's epochs any more: the rows then stay
   * `delivering` until the slot's next acquisition resets them (by the next owner, or by this
   * node after a restart). Never gives up otherwise, because a claim never re-takes a row still
   * `delivering` (the wheel may hold a message twice; see sql/claims.ts in @hourglass/postgres).
   */
  private async releaseUntilDone(
    claimed: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    error: string,
    giveUp: boolean,
    nowMs: number,
  ): Promise<boolean> {
    if (claimed.length === 0) return true;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.deps.store.releaseClaims(claimed, leases, error, giveUp, nowMs);
        for (const message of claimed) this.ownClaims.delete(message.seq);
        return true;
      } catch (releaseError) {
        const held = [...leases].some(([slot, epoch]) => this.leases.get(slot) === epoch);
        // Stopping gives up too: the rows are reset by the slots' next acquisition.
        if (!this.running || this.draining || !held) {
          for (const message of claimed) this.ownClaims.delete(message.seq);
          this.deps.logger.warn(
            { err: releaseError, messages: claimed.length },
            'releasing claims failed; left for the next acquisition of their slots to reset',
          );
          return false;
        }
        if (attempt % 12 === 0) {
          const context = { err: releaseError, messages: claimed.length, attempt };
          this.deps.logger.warn(context, 'releasing claims failed; retrying');
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
  }

  /**
   * Kafka acked; now record it. Retried on failure because a message left `delivering` would be
   * produced again by the next owner (at-least-once: consumers dedupe on `hourglass-id`).
   */
  private async markDelivered(
    claimed: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    ackedAt: number,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.deps.store.markDelivered(claimed, leases, ackedAt);
        return;
      } catch (error) {
        if (attempt >= 10 || !this.running) {
          this.deps.logger.error(
            { err: error, messages: claimed.length },
            'marking delivered failed; they may be delivered again',
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
  }
}
