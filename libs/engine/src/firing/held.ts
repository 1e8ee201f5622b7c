/**
 * Claimed messages waiting for their due time (claims run `claimAheadMs` ahead), per claim, each
 * claim's messages in due order. Bounded by the pipeline (`fireBatchSize × fireConcurrency`).
 */
import type { ClaimedMessage } from '@hourglass/core';

interface HeldBatch {
  messages: ClaimedMessage[];
  next: number;
  readonly leases: ReadonlyMap<number, number>;
}

export interface LeasedMessages {
  readonly messages: ClaimedMessage[];
  readonly leases: Map<number, number>;
}

export class HeldClaims {
  private batches: HeldBatch[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Holds a claim's messages (sorted here by due time). */
  add(messages: ClaimedMessage[], leases: ReadonlyMap<number, number>): void {
    messages.sort((a, b) => a.deliverAtMs - b.deliverAtMs);
    this.batches.push({ messages, next: 0, leases });
    this.count += messages.length;
  }

  /** Takes the held messages due by `nowMs`, at most `limit`, with their leases merged. */
  takeDue(nowMs: number, limit: number): LeasedMessages {
    const messages: ClaimedMessage[] = [];
    const leases = new Map<number, number>();
    for (const batch of this.batches) {
      const start = batch.next;
      while (batch.next < batch.messages.length && messages.length < limit) {
        const message = batch.messages[batch.next]!;
        if (message.deliverAtMs > nowMs) break;
        messages.push(message);
        batch.next++;
      }
      if (batch.next > start) for (const [slot, epoch] of batch.leases) leases.set(slot, epoch);
    }
    this.batches = this.batches.filter((batch) => batch.next < batch.messages.length);
    this.count -= messages.length;
    return { messages, leases };
  }

  nextDueMs(): number | undefined {
    let next: number | undefined;
    for (const batch of this.batches) {
      const due = batch.messages[batch.next]?.deliverAtMs;
      if (due !== undefined && (next === undefined || due < next)) next = due;
    }
    return next;
  }

  /** Removes and returns the held messages of these slots, with the leases they were claimed under. */
  dropSlots(slots: ReadonlySet<number>): LeasedMessages {
    const messages: ClaimedMessage[] = [];
    const leases = new Map<number, number>();
    if (slots.size === 0) return { messages, leases };
    for (const batch of this.batches) {
      const keep: ClaimedMessage[] = [];
      for (let i = batch.next; i < batch.messages.length; i++) {
        const message = batch.messages[i]!;
        if (!slots.has(message.slot)) {
          keep.push(message);
          continue;
        }
        messages.push(message);
        const epoch = batch.leases.get(message.slot);
        if (epoch !== undefined) leases.set(message.slot, epoch);
      }
      batch.messages = keep;
      batch.next = 0;
    }
    this.batches = this.batches.filter((batch) => batch.messages.length > 0);
    this.count -= messages.length;
    return { messages, leases };
  }
}
