/**
 * Keeping the wheel complete for the owned slots: taking slots over and letting them go, loading
 * what comes due within the horizon as it moves, and draining wheel hints left by other nodes.
 *
 * Completeness (docs/architecture.md, "Keeping the wheel complete"): for every owned slot, every
 * scheduled message due before `loadedUntil` is in the wheel, or will be put there by the insert
 * path, a drained hint, a retried load or the sweep. The loader moves `loadedUntil` forward; a
 * takeover loads [0, loadedUntil) for the new slots, at most `overdueLoadLimit` of them overdue
 * (the sweep loads the rest as the wheel drains: memory stays bounded after a long outage).
 *
 * Loader steps (acquire, release, horizon moves) run one at a time: they share `loadedUntil`.
 */
import type { SlotLease, TimingWheel, WheelItem } from '@hourglass/core';
import type { EngineDeps, ResolvedOptions } from '../options';

/** Rows per loader query. */
const LOAD_PAGE = 5000;
/** Hints per drain query. */
const HINT_PAGE = 5000;

export interface LoaderParts {
  readonly deps: EngineDeps;
  readonly options: ResolvedOptions;
  readonly wheel: TimingWheel;
  /** slot → epoch of every slot this node owns and fires. */
  readonly leases: Map<number, number>;
  /** Stops firing the slots: their held claims, retries and in-flight work (see DelayEngine). */
  readonly stopFiring: (slots: ReadonlySet<number>) => Promise<void>;
  /** Something was wheeled: fire it. */
  readonly wake: () => void;
}

export class SlotLoader {
  loadedUntil: number;
  /** The highest `untilMs` a load has started with (it may still be paging, or have failed). */
  private loadingUntil = Number.NEGATIVE_INFINITY;
  private chain: Promise<void> = Promise.resolve();
  /** A horizon step is queued or running: the loader timer adds no second one. */
  private stepQueued = false;
  /** Slots whose takeover load failed: retried by every loader step until it succeeds. */
  private readonly unloaded = new Set<number>();
  /** Slots whose overdue backlog was cut at `overdueLoadLimit`: the sweep loads the rest. */
  readonly backfilling = new Set<number>();
  private drainRunning = false;
  private drainAgain = false;
  private running = false;

  constructor(private readonly parts: LoaderParts) {
    this.loadedUntil = parts.deps.clock.now() + parts.options.horizonMs;
  }

  start(): void {
    this.running = true;
    this.loadedUntil = Math.max(
      this.loadedUntil,
      this.parts.deps.clock.now() + this.parts.options.horizonMs,
    );
  }

  stop(): Promise<void> {
    this.running = false;
    return this.chain;
  }

  /** A loader tick: moves the horizon and retries failed loads, unless a step is still queued. */
  tick(): void {
    if (this.stepQueued) return;
    this.stepQueued = true;
    this.enqueue(() => this.advanceHorizon())
      .catch(() => undefined) // logged by the chain; the next tick tries the same window again
      .finally(() => (this.stepQueued = false));
  }

  /**
   * How far the loads reach: no load has covered a due time at or after it, and the loads that
   * start from now on (after the caller's commit, so they see its rows) cover every due time from
   * `loadedUntil` on as the horizon moves. So the insert and hint paths need not wheel a message
   * due at or after it, and do not: the wheel does not deduplicate, and a message wheeled twice
   * costs its memory twice (firing it twice is harmless: the claim takes it once).
   */
  reach(): number {
    return Math.max(this.loadedUntil, this.loadingUntil);
  }

  /**
   * Takes over slots (see SlotEngine.acquireSlots): slots already fired are let go first, then
   * every slot's epoch is raised, and loading starts. Resolves once the epochs are raised; a load
   * that fails is retried by the loader's steps, so the slot is never owned but unloaded for good.
   */
  acquire(slots: readonly number[], minEpoch: number): Promise<SlotLease[]> {
    return this.enqueue(async () => {
      const wanted = [...new Set(slots)];
      if (wanted.length === 0) return [];
      const again = new Set(wanted.filter((slot) => this.parts.leases.has(slot)));
      if (again.size > 0) await this.letGo(again);
      const leases = await this.parts.deps.store.acquireSlots(wanted, minEpoch);
      for (const lease of leases) this.parts.leases.set(lease.slot, lease.epoch);
      const refused = wanted.filter((slot) => !this.parts.leases.has(slot));
      if (refused.length > 0) {
        this.parts.deps.metrics.acquisitionsRefused(refused.length);
        this.parts.deps.logger.warn(
          { slots: refused, minEpoch },
          'slots refused: a newer owner raised their epochs (a late acquisition of a replaced owner)',
        );
      }
      const acquired = leases.map((lease) => lease.slot);
      await this.loadTakenOver(acquired);
      this.parts.deps.logger.info(
        { slots: acquired.length, loadedUntil: this.loadedUntil, unloaded: this.unloaded.size },
        'slots acquired',
      );
      return leases;
    });
  }

  /** Stops firing slots; resolves once nothing of them is in flight. */
  release(slots: readonly number[]): Promise<void> {
    return this.enqueue(async () => {
      const owned = new Set(slots.filter((slot) => this.parts.leases.has(slot)));
      await this.letGo(owned);
      if (owned.size > 0) this.parts.deps.logger.info({ slots: owned.size }, 'slots released');
    });
  }

  /** Coalesces hint notifications into one drain at a time, plus one more if more arrived meanwhile. */
  requestHintDrain(): void {
    if (!this.running || this.parts.leases.size === 0) return;
    if (this.drainRunning) {
      this.drainAgain = true;
      return;
    }
    this.drainRunning = true;
    void this.drainHints().finally(() => (this.drainRunning = false));
  }

  private async letGo(slots: ReadonlySet<number>): Promise<void> {
    for (const slot of slots) {
      this.parts.leases.delete(slot);
      this.unloaded.delete(slot);
      this.backfilling.delete(slot);
    }
    this.parts.wheel.dropSlots(slots);
    await this.parts.stopFiring(slots);
  }

  private enqueue<T>(step: () => Promise<T>): Promise<T> {
    const result = this.chain.then(step);
    this.chain = result.then(
      () => undefined,
      (error: unknown) => this.parts.deps.logger.error({ err: error }, 'loader step failed'),
    );
    return result;
  }

  /** Moves `loadedUntil` to now + horizon, loading the window it passes over; retries failed loads. */
  private async advanceHorizon(): Promise<void> {
    if (!this.running) return;
    const until = this.parts.deps.clock.now() + this.parts.options.horizonMs;
    if (until > this.loadedUntil) {
      if (this.parts.leases.size > 0)
        await this.loadRange([...this.parts.leases.keys()], this.loadedUntil, until);
      this.loadedUntil = until;
    }
    if (this.unloaded.size > 0) await this.loadTakenOver([...this.unloaded]);
  }

  /** Loads [0, loadedUntil) of slots just taken over; on failure they wait for the next step. */
  private async loadTakenOver(slots: readonly number[]): Promise<void> {
    const owned = slots.filter((slot) => this.parts.leases.has(slot));
    if (owned.length === 0) return;
    for (const slot of owned) this.unloaded.add(slot);
    const now = this.parts.deps.clock.now();
    try {
      // Overdue first: it is what is late already. Cut at the limit; the sweep loads the rest.
      const overdue = await this.loadRange(owned, 0, now, this.parts.options.overdueLoadLimit);
      if (overdue >= this.parts.options.overdueLoadLimit)
        for (const slot of owned) this.backfilling.add(slot);
      await this.loadRange(owned, now, this.loadedUntil);
      for (const slot of owned) this.unloaded.delete(slot);
    } catch (error) {
      this.parts.deps.metrics.loadFailed();
      this.parts.deps.logger.warn(
        { err: error, slots: owned.length },
        'loading slots taken over failed; retrying on the next loader step',
      );
    }
  }

  /** Loads scheduled messages of the slots due in [fromMs, untilMs), at most `limit`; returns how many. */
  private async loadRange(
    slots: readonly number[],
    fromMs: number,
    untilMs: number,
    limit = Number.POSITIVE_INFINITY,
  ): Promise<number> {
    // Before the first query: from here on, inserts committing now are wheeled up to untilMs.
    this.loadingUntil = Math.max(this.loadingUntil, untilMs);
    let after: WheelItem | undefined;
    let loaded = 0;
    while (loaded < limit) {
      const pageLimit = Math.min(LOAD_PAGE, limit - loaded);
      const page = await this.parts.deps.store.loadDue(slots, fromMs, untilMs, pageLimit, after);
      for (const item of page) if (this.parts.leases.has(item.slot)) this.parts.wheel.insert(item);
      loaded += page.length;
      if (page.length > 0) this.parts.wake();
      if (page.length < pageLimit) break;
      after = page[page.length - 1];
    }
    return loaded;
  }

  /**
   * Read, wheel, then delete: hints whose delete fails (or whose delete's reply is lost) are read
   * again next time, never lost; wheeling one twice is harmless.
   */
  private async drainHints(): Promise<void> {
    try {
      do {
        this.drainAgain = false;
        const hints = await this.parts.deps.store.readHints(
          [...this.parts.leases.keys()],
          HINT_PAGE,
        );
        // A hint due beyond the loads' reach is left to the loader (see reach()).
        const reach = this.reach();
        let wheeled = false;
        for (const hint of hints) {
          if (this.parts.leases.has(hint.slot) && hint.dueMs < reach) {
            this.parts.wheel.insert(hint);
            wheeled = true;
          }
        }
        if (wheeled) this.parts.wake();
        await this.parts.deps.store.deleteHints(hints);
        if (hints.length >= HINT_PAGE) this.drainAgain = true;
      } while (this.drainAgain && this.running);
    } catch (error) {
      this.parts.deps.logger.warn(
        { err: error },
        'draining wheel hints failed; retrying on the next interval',
      );
    }
  }
}
