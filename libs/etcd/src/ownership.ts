/**
 * What this node owns, on both sides: the owner keys it holds in etcd under its current lease
 * (`held`), and what its engine fires, with the key each slot was acquired under (`fired`). The
 * engine calls go through one queue here, in the order they are made, so a release queued after an
 * acquisition runs after it, and an acquisition checks when it runs (not when it was queued) that
 * it is still wanted.
 */
import type { Logger, SlotEngine, SlotLease } from '@hourglass/core';
import type { HeldSlot } from './plan';

export interface Acquired {
  /** Slots the engine now fires under the key they were acquired with, and their epochs. */
  readonly acquired: ReadonlyArray<{ slot: number; held: HeldSlot; epoch: number }>;
  /** Slots the engine refused: the store's epoch was set by a newer owner. */
  readonly refused: readonly number[];
}

export class Ownership {
  /** Slots whose owner key this node holds under its current lease. */
  readonly held = new Map<number, HeldSlot>();
  /** Slot → create revision of the key the engine acquired it under. */
  private readonly fired = new Map<number, number>();
  /** Slot → create revision of the key of an acquisition queued or running. */
  private readonly acquiring = new Map<number, number>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly engine: SlotEngine,
    private readonly logger: Logger,
  ) {}

  /**
   * Whether every slot the engine fires was acquired under a key of the current lease. While it
   * holds that key (and the lease is fresh) no other node can raise the slot's epoch. A slot still
   * fired under a lost lease may have been taken over meanwhile, so until it is re-acquired (or
   * released) the node's ownership as a whole is not confirmed: the engine then fires under the
   * store's epoch lock.
   */
  backed(): boolean {
    return this.engine.ownedSlots().every(({ slot }) => {
      const revision = this.fired.get(slot);
      return revision !== undefined && revision === this.held.get(slot)?.revision;
    });
  }

  /** Slots the engine fires, or will once a queued acquisition ran: what to release before a key goes. */
  engaged(): Set<number> {
    const slots = new Set(this.engine.ownedSlots().map((lease) => lease.slot));
    for (const slot of this.fired.keys()) slots.add(slot);
    for (const slot of this.acquiring.keys()) slots.add(slot);
    return slots;
  }

  /** Held slots the engine fires under their current key, sorted. */
  owned(): number[] {
    return [...this.held]
      .filter(([slot, held]) => this.fired.get(slot) === held.revision)
      .map(([slot]) => slot)
      .sort((a, b) => a - b);
  }

  /** Held slots that need an acquisition: the engine does not fire them under their key yet. */
  unacquired(wanted: (slot: number) => boolean): Array<[number, HeldSlot]> {
    return [...this.held].filter(
      ([slot, held]) =>
        !held.refused &&
        wanted(slot) &&
        this.fired.get(slot) !== held.revision &&
        this.acquiring.get(slot) !== held.revision,
    );
  }

  hold(slot: number, revision: number): void {
    this.held.set(slot, { revision, refused: false });
  }

  drop(slot: number): void {
    this.held.delete(slot);
  }

  /** The lease is gone, and our keys with it. The engine keeps firing what it fires. */
  forgetHeld(): void {
    this.held.clear();
  }

  /** Told by the engine: another node raised the epochs of these slots, and it dropped them. */
  fenced(slots: readonly number[]): void {
    for (const slot of slots) this.fired.delete(slot);
  }

  /** Stops firing the slots; resolves once the engine has nothing of them in flight. */
  release(slots: readonly number[]): Promise<void> {
    return this.enqueue(async () => {
      await this.engine.releaseSlots(slots);
      for (const slot of slots) this.fired.delete(slot);
    });
  }

  /**
   * Queues the acquisition of held slots, with the largest key revision as the epoch floor. When
   * it runs, only the slots for which `stillWanted` holds are acquired (none: no engine call).
   * Rejects when the engine call does.
   */
  acquire(
    batch: ReadonlyArray<[number, HeldSlot]>,
    stillWanted: (slot: number, held: HeldSlot) => boolean,
  ): Promise<Acquired> {
    for (const [slot, held] of batch) this.acquiring.set(slot, held.revision);
    return this.enqueue(async () => {
      const wanted = batch.filter(([slot, held]) => stillWanted(slot, held));
      if (wanted.length === 0) return { acquired: [], refused: [] };
      const minEpoch = wanted.reduce((max, [, held]) => Math.max(max, held.revision), 0);
      const leases: readonly SlotLease[] = await this.engine.acquireSlots(
        wanted.map(([slot]) => slot),
        minEpoch,
      );
      const epochs = new Map(leases.map((lease) => [lease.slot, lease.epoch]));
      const acquired: Array<{ slot: number; held: HeldSlot; epoch: number }> = [];
      const refused: number[] = [];
      for (const [slot, held] of wanted) {
        const epoch = epochs.get(slot);
        if (epoch === undefined) {
          refused.push(slot);
          this.fired.delete(slot);
          held.refused = true;
        } else {
          acquired.push({ slot, held, epoch });
          this.fired.set(slot, held.revision);
        }
      }
      if (refused.length > 0)
        this.logger.warn(
          { slots: refused, minEpoch },
          'the engine refused slots (a newer owner set their epochs); giving their keys back',
        );
      return { acquired, refused };
    }).finally(() => {
      for (const [slot, held] of batch)
        if (this.acquiring.get(slot) === held.revision) this.acquiring.delete(slot);
    });
  }

  /** Resolves once every engine call queued so far has settled. */
  async idle(): Promise<void> {
    await this.tail.catch(() => undefined);
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
