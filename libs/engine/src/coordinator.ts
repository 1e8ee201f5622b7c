/**
 * Slot ownership as the engine sees it. A coordinator decides which slots this node owns and tells
 * the engine to acquire or release them (the port itself is in @hourglass/core).
 */
import type { SlotCoordinator, SlotEngine } from '@hourglass/core';
import { allSlots } from '@hourglass/core';

/** One node owning every slot; for a single-node deployment and tests. */
export class StandaloneCoordinator implements SlotCoordinator {
  private started = false;

  constructor(
    private readonly engine: SlotEngine,
    private readonly slotCount: number,
  ) {}

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.engine.acquireSlots(allSlots(this.slotCount));
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.engine.releaseSlots(allSlots(this.slotCount));
  }

  ownershipConfirmed(): boolean {
    return true;
  }
}
