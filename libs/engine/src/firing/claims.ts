/**
 * Which claims this node accounts for: rows it holds `delivering` (claimed, not yet marked or
 * released) and refs of claim statements still under way. Recovery after a failed claim, and the
 * sweep for stuck claims, release only rows that neither covers: a row whose concurrent claim
 * succeeded but has not answered yet must not be put back while that claim delivers it.
 */
import type { MessageRef } from '@hourglass/core';

export class ClaimLedger {
  private readonly own = new Set<number>();
  private readonly pending = new Map<number, number>();

  /** A claim statement for these refs starts. */
  begin(refs: readonly MessageRef[]): void {
    for (const ref of refs) this.pending.set(ref.seq, (this.pending.get(ref.seq) ?? 0) + 1);
  }

  /** The claim statement for these refs answered (or failed); `claimed` are ours now. */
  end(refs: readonly MessageRef[], claimed: readonly MessageRef[]): void {
    for (const ref of refs) {
      const left = (this.pending.get(ref.seq) ?? 1) - 1;
      if (left > 0) this.pending.set(ref.seq, left);
      else this.pending.delete(ref.seq);
    }
    for (const ref of claimed) this.own.add(ref.seq);
  }

  /** These rows are no longer ours to account for (marked, released, or left to a takeover). */
  settle(refs: readonly MessageRef[]): void {
    for (const ref of refs) this.own.delete(ref.seq);
  }

  /** Whether a claim of this row by this node is held or may still answer. */
  accounts(seq: number): boolean {
    return this.own.has(seq) || this.pending.has(seq);
  }

  get held(): number {
    return this.own.size;
  }
}
