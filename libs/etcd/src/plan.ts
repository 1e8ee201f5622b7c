/**
 * What one reconcile pass should do, from a snapshot, the slots this node holds keys for and the
 * slots its engine fires. Pure, so the rules are in one place; passes.ts carries the plan out in
 * this order:
 *   1. stop firing `stopFiring` (engine.releaseSlots waits for in-flight batches),
 *   2. delete the `release` keys and the `stale` keys (guarded by their create revision),
 *   3. create the keys of `claim` slots (only if absent), then acquire every held slot the target
 *      gives us and the engine does not fire under that key yet, with the largest create revision
 *      as the epoch floor (an acquisition of a slot the engine already fires re-raises its epoch).
 * Stopping before deleting is what makes a handoff clean: when the new owner can create the key,
 * the old one has nothing of the slot in flight any more. Stopping is decided from what the
 * engine fires (`engaged`), not from what this node thinks it acquired: an acquisition that failed
 * or was refused may still have left the slot firing.
 *
 * The engine may fire slots this node holds no key for: after the lease was lost (etcd
 * unreachable, or the process paused) it keeps firing, fenced by the store. Once etcd answers, each
 * such slot is kept (its key is free and the target is us: claim it, then re-acquire), or stopped
 * (another node holds its key, or the target gives it to another node).
 */
import type { ClusterState, OwnerEntry } from './state';

/** A slot whose owner key this node created (or adopted) under its current lease. */
export interface HeldSlot {
  /** The key's create revision: the epoch floor, and the guard of its deletion. */
  readonly revision: number;
  /**
   * The engine refused to acquire the slot under this key (the store's epoch was set by a newer
   * owner): the key is given back, and claimed again under a new revision by a later pass.
   */
  refused: boolean;
}

export interface PassPlan {
  /** Held slots whose key is gone or was re-created by someone else: no longer ours in etcd. */
  readonly forget: number[];
  /** Keys under our current lease that we do not track (a pass failed after creating them). */
  readonly adopt: OwnerEntry[];
  /** Slots the engine must stop firing before any key is deleted or any slot claimed. */
  readonly stopFiring: number[];
  /** Held slots the target gives to another node (or refused by the engine): delete the key. */
  readonly release: number[];
  /** Keys with our node id from an earlier lease of ours: delete them. */
  readonly stale: OwnerEntry[];
  /** Free slots the target gives us (including ones the engine still fires from a lost lease). */
  readonly claim: number[];
}

export interface PassInput {
  readonly me: string;
  readonly leaseId: string;
  readonly held: ReadonlyMap<number, HeldSlot>;
  /** Slots the engine fires, or may fire once a queued acquisition ran. */
  readonly engaged: ReadonlySet<number>;
  readonly state: ClusterState;
  /** The assignment to move towards; undefined while the first membership is being debounced. */
  readonly target: ReadonlyMap<number, string> | undefined;
  readonly slotCount: number;
}

export function planPass(input: PassInput): PassPlan {
  const { me, leaseId, held, engaged, state, target, slotCount } = input;
  const ours = (owner: OwnerEntry | undefined): boolean =>
    owner !== undefined && owner.node === me && owner.lease === leaseId;
  const forget: number[] = [];
  const release: number[] = [];
  for (const [slot, slotHeld] of held) {
    const owner = state.owners.get(slot);
    if (!ours(owner) || owner?.createRevision !== slotHeld.revision) forget.push(slot);
    else if (slotHeld.refused || (target && target.get(slot) !== me)) release.push(slot);
  }
  const stale: OwnerEntry[] = [];
  const adopt: OwnerEntry[] = [];
  for (const owner of state.owners.values()) {
    if (owner.node !== me) continue;
    if (owner.lease !== leaseId) stale.push(owner);
    else if (!held.has(owner.slot)) adopt.push(owner);
  }
  const releasing = new Set(release);
  const stopFiring: number[] = [];
  for (const slot of engaged) {
    const owner = state.owners.get(slot);
    const keep = owner
      ? ours(owner) && !releasing.has(slot)
      : // Free: ours to claim if the target says so (or while no target is known yet).
        !target || target.get(slot) === me;
    if (!keep) stopFiring.push(slot);
  }
  const claim: number[] = [];
  if (target) {
    for (let slot = 0; slot < slotCount; slot++) {
      if (target.get(slot) === me && !state.owners.has(slot)) claim.push(slot);
    }
  }
  return { forget, adopt, stopFiring: stopFiring.sort((a, b) => a - b), release, stale, claim };
}
