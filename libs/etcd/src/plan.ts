/**
 * What one reconcile pass should do, from a snapshot and the slots this node holds. Pure, so the
 * rules are in one place; {@link EtcdCoordinator} carries the plan out in this order:
 *   1. stop firing `lost` and `release` slots (engine.releaseSlots waits for in-flight batches),
 *   2. delete the `release` keys (guarded by their create revision), and `stale` keys,
 *   3. create the keys of `claim` slots (only if absent), then acquire every held slot the target
 *      gives us in the engine, with the largest create revision as the epoch floor.
 * Stopping before deleting is what makes a handoff safe: when the new owner can create the key,
 * the old one has nothing of the slot in flight any more.
 */
import type { ClusterState, OwnerEntry } from './state';

/** A slot whose owner key this node created under its current lease. */
export interface HeldSlot {
  /** The key's create revision: the epoch floor, and the guard of its deletion. */
  readonly revision: number;
  /** Whether the engine acquired it (fires it). False while pending or being released. */
  acquired: boolean;
}

export interface PassPlan {
  /** Held slots whose key is gone or was re-created by someone else: stop firing them now. */
  readonly lost: number[];
  /** Held slots the target gives to another node: stop firing, then delete the key. */
  readonly release: number[];
  /** Keys with our node id from an earlier lease of ours (lost while we were cut off). */
  readonly stale: OwnerEntry[];
  /** Keys under our current lease that we do not track (a pass failed after creating them). */
  readonly adopt: OwnerEntry[];
  /** Free slots the target gives us. */
  readonly claim: number[];
}

export interface PassInput {
  readonly me: string;
  readonly leaseId: string;
  readonly held: ReadonlyMap<number, HeldSlot>;
  readonly state: ClusterState;
  /** The assignment to move towards; undefined while the first membership is being debounced. */
  readonly target: ReadonlyMap<number, string> | undefined;
  readonly slotCount: number;
}

export function planPass({ me, leaseId, held, state, target, slotCount }: PassInput): PassPlan {
  const lost: number[] = [];
  const release: number[] = [];
  for (const [slot, slotHeld] of held) {
    const owner = state.owners.get(slot);
    if (!owner || owner.createRevision !== slotHeld.revision || owner.node !== me) lost.push(slot);
    else if (target && target.get(slot) !== me) release.push(slot);
  }
  const stale: OwnerEntry[] = [];
  const adopt: OwnerEntry[] = [];
  for (const owner of state.owners.values()) {
    if (owner.node !== me) continue;
    if (owner.lease !== leaseId) stale.push(owner);
    else if (!held.has(owner.slot)) adopt.push(owner);
  }
  const claim: number[] = [];
  if (target) {
    for (let slot = 0; slot < slotCount; slot++) {
      if (target.get(slot) === me && !state.owners.has(slot)) claim.push(slot);
    }
  }
  return { lost, release, stale, adopt, claim };
}
