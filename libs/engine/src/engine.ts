/**
 * The delay engine of one node: it owns a set of slots, keeps every scheduled message of those
 * slots that is due within the horizon in a timing wheel, and fires due messages through the
 * delivery port. It talks to the world only through the ports in @hourglass/core.
 *
 * Where each part lives:
 * - slots/loader.ts   taking slots over and letting them go, loading the horizon, draining hints
 * - slots/sweep.ts    the safety nets: overdue messages nothing holds, claims nothing accounts for
 * - firing/pipeline.ts   wheel → claim → hold until due → deliver → mark
 * - firing/marks.ts      marking delivered messages, batched, retried until done
 * - firing/retry.ts      releasing claims, parking what waits for a target that is down, backoff
 * - firing/targets.ts    messages with a target list: HTTP callbacks and fan-out, durable retries
 * - firing/claims.ts, firing/held.ts   the bookkeeping of claims held and under way
 */
import type {
  DebounceOutcome,
  DebounceSpec,
  InsertOutcome,
  MessageChange,
  MessageUpdated,
  NewMessage,
  SlotLease,
  SlotEngine,
  TargetState,
} from '@hourglass/core';
import { TimingWheel } from '@hourglass/core';
import { ClaimLedger } from './firing/claims';
import { HeldClaims } from './firing/held';
import { MarkQueue } from './firing/marks';
import { FirePipeline } from './firing/pipeline';
import { Retries } from './firing/retry';
import { TargetFiring } from './firing/targets';
import type { EngineDeps, EngineOptions, ResolvedOptions } from './options';
import { WHEEL_SLACK_MS, resolveOptions } from './options';
import { SlotLoader } from './slots/loader';
import { Sweeper } from './slots/sweep';
import { GroupCommit } from './group-commit';

export type { AppDeliverySource, EngineDeps, EngineOptions } from './options';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class DelayEngine implements SlotEngine {
  private readonly options: ResolvedOptions;
  private readonly wheel: TimingWheel;
  /** slot → epoch of every slot this node owns and fires. */
  private readonly leases = new Map<number, number>();
  private readonly ledger = new ClaimLedger();
  private readonly held = new HeldClaims();
  private readonly marks: MarkQueue;
  private readonly retries: Retries;
  private readonly pipeline: FirePipeline;
  private readonly targets: TargetFiring;
  private readonly loader: SlotLoader;
  private readonly sweeper: Sweeper;
  private readonly inserts: GroupCommit<NewMessage, InsertOutcome>;
  private timers: NodeJS.Timeout[] = [];
  private running = false;
  private stopping = false;
  private stopDeadlineMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly deps: EngineDeps,
    options: EngineOptions,
  ) {
    this.options = resolveOptions(options);
    const now = deps.clock.now();
    this.wheel = new TimingWheel({ spanMs: this.options.horizonMs + WHEEL_SLACK_MS, startMs: now });
    const epochOf = (slot: number): number | undefined => this.leases.get(slot);
    const wake = (): void => this.pipeline.pump();
    this.marks = new MarkQueue({
      store: deps.store,
      logger: deps.logger,
      metrics: deps.metrics,
      ledger: this.ledger,
      keepTrying: () => this.running && deps.clock.now() < this.stopDeadlineMs,
      sleep,
    });
    this.retries = new Retries({
      store: deps.store,
      clock: deps.clock,
      logger: deps.logger,
      metrics: deps.metrics,
      options: this.options,
      wheel: this.wheel,
      ledger: this.ledger,
      epochOf,
      active: () => this.running && !this.stopping,
      wake,
      sleep,
    });
    this.targets = new TargetFiring({
      deps,
      options: this.options,
      ledger: this.ledger,
      wheel: this.wheel,
      epochOf,
      reach: () => this.loader.reach(),
      active: () => this.running && !this.stopping,
      wake,
      sleep,
    });
    this.pipeline = new FirePipeline({
      deps,
      options: this.options,
      wheel: this.wheel,
      ledger: this.ledger,
      held: this.held,
      marks: this.marks,
      retries: this.retries,
      epochOf,
      slotsLost: (slots) => void this.loseSlots(slots),
      targets: this.targets,
    });
    this.loader = new SlotLoader({
      deps,
      options: this.options,
      wheel: this.wheel,
      leases: this.leases,
      stopFiring: (slots) => this.stopFiring(slots),
      wake,
    });
    this.sweeper = new Sweeper({
      deps,
      options: this.options,
      wheel: this.wheel,
      leases: this.leases,
      ledger: this.ledger,
      retries: this.retries,
      backfilling: this.loader.backfilling,
      wake,
    });
    this.inserts = new GroupCommit(
      (messages) => this.insertNow(messages),
      this.options.groupCommit,
      (flush) => deps.metrics.insertGroup(flush.messages, flush.waitedMs),
    );
    deps.metrics.observeEngine(() => ({
      wheelSize: this.wheel.size,
      ownedSlots: this.leases.size,
      loaderLagMs: Math.max(0, deps.clock.now() + this.options.horizonMs - this.loader.loadedUntil),
      inFlightBatches: this.pipeline.batchesInFlight,
    }));
    deps.store.onHint((slot) => {
      if (this.running && this.leases.has(slot)) this.loader.requestHintDrain();
    });
  }

  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.running = true;
    this.stopping = false;
    this.loader.start();
    this.pipeline.start();
    const { loaderIntervalMs, hintDrainIntervalMs, sweepIntervalMs } = this.options;
    this.timers = [
      setInterval(() => {
        this.loader.tick();
        // While a takeover's backlog is being loaded in parts, load the next part as soon as
        // the wheel has worked off the previous one.
        if (this.loader.backfilling.size > 0 && this.sweeper.caughtUp(this.deps.clock.now()))
          void this.sweeper.sweep();
      }, loaderIntervalMs),
      setInterval(() => this.loader.requestHintDrain(), hintDrainIntervalMs),
      setInterval(() => void this.sweeper.sweep(), sweepIntervalMs),
    ];
    return Promise.resolve();
  }

  /** Stops firing; resolves when in-flight batches finished. Slots stay owned (the coordinator releases them). */
  async stop(): Promise<void> {
    if (!this.running || this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    // No new claims, but what is claimed (due within claimAheadMs) is delivered at its due time,
    // or released if delivering fails.
    this.pipeline.beginDrain();
    await this.pipeline.drained();
    this.stopDeadlineMs = this.deps.clock.now() + this.options.stopMarkTimeoutMs;
    this.pipeline.stop();
    await this.loader.stop();
    await this.pipeline.quiesce();
    await this.marks.idle();
    this.retries.stop();
    this.running = false;
  }

  ownedSlots(): SlotLease[] {
    return [...this.leases].map(([slot, epoch]) => ({ slot, epoch }));
  }

  /** Messages held in the wheel. */
  get heldMessages(): number {
    return this.wheel.size;
  }

  acquireSlots(slots: readonly number[], minEpoch = 0): Promise<SlotLease[]> {
    return this.loader.acquire(slots, minEpoch);
  }

  releaseSlots(slots: readonly number[]): Promise<void> {
    return this.loader.release(slots);
  }

  /** Runs the safety-net sweep now (it also runs every `sweepIntervalMs`). */
  sweep(): Promise<void> {
    return this.sweeper.sweep();
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
  /**
   * Persists new messages and wheels those this node fires; resolves after the commit. Small
   * inserts arriving together share one statement and one commit (./group-commit.ts).
   */
  insert(messages: readonly NewMessage[]): Promise<InsertOutcome[]> {
    return this.inserts.submit(messages);
  }

  private async insertNow(messages: readonly NewMessage[]): Promise<InsertOutcome[]> {
    const context = this.writeContext();
    const { ownedEpochs } = context;
    const started = performance.now();
    const outcomes = await this.deps.store.insertBatch(messages, context);
    this.deps.metrics.inserted(performance.now() - started);
    let wheeled = false;
    const reach = this.loader.reach();
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
    if (wheeled) this.pipeline.arm();
    return outcomes;
  }

  /**
   * failed → scheduled now (POST …/retry): the owner fires it at once, this node itself when it
   * owns the slot, else through a wheel hint. False when the message was not failed.
   */
  async rearm(
    app: string,
    id: string,
    targetStates: readonly TargetState[] | null,
  ): Promise<boolean> {
    const now = this.deps.clock.now();
    const ownedEpochs = new Map(this.leases);
    const rearmed = await this.deps.store.rearmFailed(app, id, targetStates, now, {
      ownedEpochs,
      hintBeforeMs: now + this.options.horizonMs,
    });
    if (!rearmed) return false;
    if (rearmed.wheelable && this.leases.get(rearmed.slot) === ownedEpochs.get(rearmed.slot)) {
      this.wheel.insert({ seq: rearmed.seq, slot: rearmed.slot, dueMs: now });
      this.pipeline.pump();
    }
    return true;
  }

  /**
   * Changes a scheduled message at `expectedVersion` (PATCH). With a new due time, the copies this
   * node holds under the old one are dropped (others fire to nothing: the claim checks the due
   * time) and the owner gets the new one: this node's wheel when it owns the slot and the time is
   * within the loader's reach, else a hint or, beyond the horizon, the owner's loader.
   */
  async update(
    app: string,
    id: string,
    expectedVersion: number,
    change: MessageChange,
  ): Promise<MessageUpdated | null> {
    const context = this.writeContext();
    const updated = await this.deps.store.updateScheduled(
      app,
      id,
      expectedVersion,
      change,
      context,
    );
    if (!updated || change.deliverAtMs === null) return updated;
    this.wheel.cancel(updated.seq, updated.previousDeliverAtMs);
    this.wheelIfOwned(updated, updated.slot, updated.deliverAtMs, context.ownedEpochs);
    return updated;
  }

  /**
   * Inserts a message under a debounce key (see libs/core/src/debounce.ts): created, merged into
   * the scheduled message holding the key, or yielding to it. A created or moved message is wheeled
   * like an insert's.
   */
  async insertDebounced(message: NewMessage, debounce: DebounceSpec): Promise<DebounceOutcome> {
    const context = this.writeContext();
    const outcome = await this.deps.store.insertDebounced(
      message,
      debounce,
      context.nowMs,
      context,
    );
    if (outcome.kind === 'created' || outcome.kind === 'merged')
      this.wheelIfOwned(
        outcome,
        outcome.message.slot,
        outcome.message.deliverAtMs,
        context.ownedEpochs,
      );
    return outcome;
  }

  /**
   * What a write that may create a near-due message tells the store (insert, change, debounce):
   * the epochs this node holds, to decide what it wheels itself, and up to when the owner of any
   * other slot has loaded already, so those get a hint. Taken before the write starts.
   */
  private writeContext(): {
    nowMs: number;
    ownedEpochs: Map<number, number>;
    hintBeforeMs: number;
  } {
    const nowMs = this.deps.clock.now();
    return {
      nowMs,
      ownedEpochs: new Map(this.leases),
      hintBeforeMs: nowMs + this.options.horizonMs + WHEEL_SLACK_MS / 2,
    };
  }

  /**
   * Wheels a message a store write found in a slot this node holds (`wheelable`), unless the slot
   * was let go meanwhile or the time is beyond the loader's reach (a later load wheels it then).
   */
  private wheelIfOwned(
    written: { seq: number; wheelable: boolean },
    slot: number,
    dueMs: number,
    ownedEpochs: ReadonlyMap<number, number>,
  ): void {
    if (!written.wheelable || this.leases.get(slot) !== ownedEpochs.get(slot)) return;
    if (dueMs >= this.loader.reach()) return;
    this.wheel.insert({ seq: written.seq, slot, dueMs });
    this.pipeline.arm();
  }

  /**
   * Stops firing slots (their wheel entries are gone already): held claims go back, retries are
   * forgotten, and in-flight claims, deliveries and marks that may include them finish, so the
   * caller can let ownership go knowing nothing of them is still being delivered.
   */
  private async stopFiring(slots: ReadonlySet<number>): Promise<void> {
    if (slots.size === 0) return;
    this.retries.dropSlots(slots);
    await this.pipeline.dropSlots(slots);
    await this.pipeline.settle();
  }

  /** Another node raised these slots' epochs: stop firing them and tell the coordinator. */
  private async loseSlots(slots: readonly number[]): Promise<void> {
    await this.loader.release(slots);
    this.deps.onSlotsFenced?.(slots);
  }
}
