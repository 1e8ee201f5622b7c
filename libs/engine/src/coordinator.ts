/**
 * Slot ownership as the engine sees it. A coordinator decides which slots this node owns and tells
 * the engine to acquire or release them; `canFire` is its local self-fence.
 */
import { allSlots } from '@hourglass/core';
import type { DelayEngine } from './engine';

export interface SlotCoordinator {
  /** Joins and starts acquiring slots for the engine. */
  start(): Promise<void>;
  /** Hands every owned slot back (graceful leave) and leaves. Resolves when done. */
  stop(): Promise<void>;
  /** False when this node can no longer be sure it still owns its slots (lease possibly lost). */
  canFire(): boolean;
}

/** One node owning every slot; for a single-node deployment and tests. */
export class StandaloneCoordinator implements SlotCoordinator {
  private started = false;

  constructor(
    private readonly engine: DelayEngine,
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

  canFire(): boolean {
    return true;
  }
}
