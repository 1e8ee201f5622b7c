/**
 * The assignment a pass moves towards, and when a changed membership is adopted (the debounce).
 * Membership changes (nodes, drains, pins) are adopted only after `rebalanceDelayMs` without
 * further change, so a burst of joins moves slots once; the current owners are always fresh, so
 * handoffs proceed as soon as keys disappear.
 */
import { assignSlots } from '@hourglass/core';
import type { Settings } from './options';
import { isRemovalOnly, membershipOf, ownersOf } from './state';
import type { ClusterState, Membership } from './state';

/** Debounce cap: membership that keeps changing is adopted after this many delays anyway. */
const MAX_DEBOUNCE_FACTOR = 5;

export interface Target {
  /** Slot → node; undefined while the first membership is being debounced. */
  readonly assignment: Map<number, string> | undefined;
  /** When a pending change will be adopted, if one is waiting: run a pass again after this long. */
  readonly recheckInMs: number | undefined;
}

export class Rebalance {
  /** The membership the assignment currently follows, and the change waiting out the debounce. */
  private adopted: Membership | undefined;
  private pending: { signature: string; sinceMs: number; firstSinceMs: number } | undefined;
  private rejoined = false;

  constructor(private readonly settings: Settings) {}

  /**
   * Our lease was lost and we joined again. Until the membership settles, departures are debounced
   * like any other change: after an outage of etcd the others are probably rejoining too, and
   * giving their slots away for the moment their keys are absent would move every slot twice.
   */
  noteRejoin(): void {
    this.rejoined = true;
  }

  targetFor(state: ClusterState): Target {
    const { clock, rebalanceDelayMs, slotCount, logger } = this.settings;
    const membership = membershipOf(state);
    const now = clock.now();
    let recheckInMs: number | undefined;
    if (membership.signature === this.adopted?.signature) {
      this.settle(membership);
    } else if (!this.adopted && state.owners.size > 0) {
      // Joining a running cluster: the others debounce our arrival before they let slots go, and
      // we take each as soon as its key disappears. Debouncing here too would only widen that gap
      // (we start counting later than they do). A cold start (no owners) still debounces, so
      // nodes starting together coalesce before anyone claims.
      this.settle(membership);
    } else if (this.adopted && !this.rejoined && isRemovalOnly(this.adopted, membership)) {
      // Nodes left (lease expired or graceful leave) and nothing else changed: their slots are
      // unowned or about to be, so waiting would only lengthen the failover. Debouncing exists to
      // coalesce joins and admin changes, which move slots that are being fired.
      logger.info(
        {
          nodes: membership.nodes,
          left: this.adopted.nodes.filter((id) => !membership.nodes.includes(id)),
        },
        'nodes left; rebalancing now',
      );
      this.settle(membership);
    } else {
      if (this.pending?.signature !== membership.signature) {
        this.pending = {
          signature: membership.signature,
          sinceMs: now,
          firstSinceMs: this.pending?.firstSinceMs ?? now,
        };
      }
      const dueMs = Math.min(
        this.pending.sinceMs + rebalanceDelayMs,
        this.pending.firstSinceMs + MAX_DEBOUNCE_FACTOR * rebalanceDelayMs,
      );
      if (now >= dueMs) {
        logger.info(
          { nodes: membership.nodes, drained: [...membership.drained], pins: membership.pins.size },
          'membership settled; rebalancing',
        );
        this.settle(membership);
      } else {
        recheckInMs = dueMs - now;
      }
    }
    const adopted = this.adopted;
    if (!adopted) return { assignment: undefined, recheckInMs };
    const assignment = assignSlots({
      slotCount,
      nodes: adopted.nodes,
      drained: adopted.drained,
      pins: adopted.pins,
      previous: ownersOf(state),
    });
    return { assignment, recheckInMs };
  }

  private settle(membership: Membership): void {
    this.adopted = membership;
    this.pending = undefined;
    this.rejoined = false;
  }
}
