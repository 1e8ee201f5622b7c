/**
 * Settling messages with a target list: their new states go to the store in batches (everything
 * settled within one turn of the event loop shares a statement), retried until they commit or
 * the slots are no longer this node's. Then the claims are let go, and a message with a retry
 * inside the loader's reach goes back in the wheel at its next attempt's time.
 *
 * A settlement that never commits leaves the row `delivering`; the next acquisition of the slot
 * resets it and its owner sends the attempt again (at least once per target).
 */
import type { Logger, MessageStore, TargetSettlement, TimingWheel } from '@hourglass/core';
import type { ClaimLedger } from './claims';

const RETRY_MAX_MS = 1_000;

export interface SettleQueueDeps {
  readonly store: MessageStore;
  readonly logger: Logger;
  readonly ledger: ClaimLedger;
  readonly wheel: TimingWheel;
  readonly now: () => number;
  readonly epochOf: (slot: number) => number | undefined;
  /** Due times before this are not loaded again by the loader: the settle wheels them. */
  readonly reach: () => number;
  readonly active: () => boolean;
  readonly wake: () => void;
  readonly sleep: (ms: number) => Promise<void>;
}

interface Pending {
  readonly settlement: TargetSettlement;
  readonly done: () => void;
}

export class SettleQueue {
  /** Settlements waiting for the next flush, by the lease map they were claimed under. */
  private readonly waiting = new Map<ReadonlyMap<number, number>, Pending[]>();
  private scheduled = false;

  constructor(private readonly deps: SettleQueueDeps) {}

  /** Resolves once the settlement committed (or was given up, see above). */
  add(settlement: TargetSettlement, leases: ReadonlyMap<number, number>): Promise<void> {
    return new Promise((resolve) => {
      let list = this.waiting.get(leases);
      if (!list) {
        list = [];
        this.waiting.set(leases, list);
      }
      list.push({ settlement, done: resolve });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Settles at once (the caller holds the epoch lock); false if the store failed. */
  async settleNow(
    settlements: readonly TargetSettlement[],
    leases: ReadonlyMap<number, number>,
  ): Promise<boolean> {
    try {
      await this.deps.store.settleTargets(settlements, leases, this.deps.now());
    } catch {
      return false;
    }
    this.settled(settlements, leases);
    return true;
  }

  private flush(): void {
    this.scheduled = false;
    const batches = [...this.waiting];
    this.waiting.clear();
    for (const [leases, list] of batches) void this.commit(list, leases);
  }

  private async commit(
    list: readonly Pending[],
    leases: ReadonlyMap<number, number>,
  ): Promise<void> {
    const settlements = list.map((pending) => pending.settlement);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.deps.store.settleTargets(settlements, leases, this.deps.now());
          this.settled(settlements, leases);
          return;
        } catch (error) {
          const held = [...leases].some(([slot, epoch]) => this.deps.epochOf(slot) === epoch);
          if (!this.deps.active() || !held) {
            this.deps.logger.warn(
              { err: error, messages: settlements.length },
              'settling callback attempts failed; the next acquisition of their slots resets them',
            );
            this.deps.ledger.settle(settlements.map((s) => s.ref));
            return;
          }
          if (attempt % 12 === 0)
            this.deps.logger.warn(
              { err: error, messages: settlements.length, attempt },
              'settling callback attempts failed; retrying',
            );
          await this.deps.sleep(Math.min(RETRY_MAX_MS, 50 * 2 ** attempt));
        }
      }
    } finally {
      for (const pending of list) pending.done();
    }
  }

  private settled(
    settlements: readonly TargetSettlement[],
    leases: ReadonlyMap<number, number>,
  ): void {
    this.deps.ledger.settle(settlements.map((s) => s.ref));
    const reach = this.deps.reach();
    let wheeled = false;
    for (const settlement of settlements) {
      if (settlement.state !== 'scheduled') continue;
      const { slot, seq } = settlement.ref;
      if (this.deps.epochOf(slot) !== leases.get(slot) || settlement.deliverAtMs >= reach) continue;
      this.deps.wheel.insert({ seq, slot, dueMs: settlement.deliverAtMs });
      wheeled = true;
    }
    if (wheeled) this.deps.wake();
  }
}
