/**
 * A recording engine for coordinator tests, on a shared fake of the store's slot epochs. It keeps
 * the contract of libs/core/src/runtime.ts: an acquisition raises each epoch to
 * GREATEST(epoch + 1, minEpoch) unless a newer owner (a higher minEpoch) raised it last, in which
 * case the slot is refused (missing from the result); re-acquiring a slot it fires is allowed.
 */
import type { SlotCoordinator, SlotLease } from '@hourglass/core';

/** The store's `slot_epochs`, shared by every engine of a test. */
export class FakeEpochs {
  private readonly rows = new Map<number, { epoch: number; ownerRevision: number }>();

  epochOf(slot: number): number {
    return this.rows.get(slot)?.epoch ?? 0;
  }

  /** The new epoch, or undefined when refused (a newer owner raised it last). */
  raise(slot: number, minEpoch: number): number | undefined {
    const row = this.rows.get(slot) ?? { epoch: 0, ownerRevision: 0 };
    if (row.ownerRevision > minEpoch) return undefined;
    const epoch = Math.max(row.epoch + 1, minEpoch);
    this.rows.set(slot, { epoch, ownerRevision: minEpoch });
    return epoch;
  }

  /** As if an owner with this revision had raised the slot's epoch last. */
  setOwnerRevision(slot: number, ownerRevision: number): void {
    const row = this.rows.get(slot) ?? { epoch: 0, ownerRevision: 0 };
    this.rows.set(slot, { ...row, ownerRevision });
  }
}

export interface EngineCall {
  readonly op: 'acquire' | 'release' | 'fenced';
  readonly slots: number[];
  readonly minEpoch?: number;
  /** acquire: the slots refused. */
  readonly refused?: number[];
  readonly atMs: number;
}

export class FakeEngine {
  /** Slot → the epoch it fires under. */
  readonly owned = new Map<number, number>();
  readonly calls: EngineCall[] = [];
  /** Acquisitions raise the epochs and start firing, then reject (as when a load fails). */
  failAcquisitions = false;
  /** Like the real engine at its next claim: drops the slots whose epoch another node raised. */
  detectsFencing = true;
  /** A killed process: fires nothing that matters, and is not checked. */
  dead = false;
  coordinator: SlotCoordinator | undefined;

  constructor(
    readonly name: string,
    readonly epochs: FakeEpochs,
  ) {}

  slots(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  ownedSlots(): SlotLease[] {
    return [...this.owned].map(([slot, epoch]) => ({ slot, epoch }));
  }

  acquireSlots(slots: readonly number[], minEpoch = 0): Promise<SlotLease[]> {
    const leases: SlotLease[] = [];
    const refused: number[] = [];
    for (const slot of slots) {
      const epoch = this.epochs.raise(slot, minEpoch);
      if (epoch === undefined) {
        refused.push(slot);
        continue;
      }
      this.owned.set(slot, epoch);
      leases.push({ slot, epoch });
    }
    this.calls.push({ op: 'acquire', slots: [...slots], minEpoch, refused, atMs: Date.now() });
    if (this.failAcquisitions) return Promise.reject(new Error('acquisition failed (test)'));
    return Promise.resolve(leases);
  }

  releaseSlots(slots: readonly number[]): Promise<void> {
    for (const slot of slots) this.owned.delete(slot);
    this.calls.push({ op: 'release', slots: [...slots], atMs: Date.now() });
    return Promise.resolve();
  }

  /** Drops what another node has taken over, and tells the coordinator (as the engine does). */
  checkFenced(): void {
    if (this.dead || !this.detectsFencing) return;
    const superseded = [...this.owned]
      .filter(([slot, epoch]) => this.epochs.epochOf(slot) !== epoch)
      .map(([slot]) => slot);
    if (superseded.length === 0) return;
    for (const slot of superseded) this.owned.delete(slot);
    this.calls.push({ op: 'fenced', slots: superseded, atMs: Date.now() });
    this.coordinator?.slotsFenced?.(superseded);
  }

  /** The calls of one kind made since `from` (an index into {@link calls}). */
  since(from: number, op: EngineCall['op']): EngineCall[] {
    return this.calls.slice(from).filter((call) => call.op === op);
  }
}
