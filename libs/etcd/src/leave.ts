/**
 * Graceful leave (`stop()`, SIGTERM): unregister so the others rebalance at once (departures are
 * not debounced), keep firing while they adopt the new membership, then stop firing every slot,
 * delete our owner keys and revoke the lease. Each slot is without a firing owner only for the
 * handoff itself: the deletion, the new owner's claim and its epoch raise.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Namespace } from 'etcd3';
import { guardedTxns, readState } from './etcd-io';
import { nodeKey, ownerKey } from './keys';
import type { Settings } from './options';
import type { Ownership } from './ownership';
import type { Sessions } from './session';

/**
 * How long a leaving node keeps firing after unregistering: the others rebalance as soon as they
 * see it go (no debounce for departures) and then take each slot the moment its key disappears.
 */
const LEAVE_NOTICE_MS = 300;

export interface Leaving {
  readonly settings: Settings;
  readonly ns: Namespace;
  readonly sessions: Sessions;
  readonly ownership: Ownership;
}

/** Resolves when the engine fires none of our slots any more and our keys are gone (or going). */
export async function leave({ settings, ns, sessions, ownership }: Leaving): Promise<void> {
  const { logger, nodeId, slotCount } = settings;
  await ownership.idle();
  const session = sessions.current;
  const live = session !== undefined && !session.lost;
  const startedMs = Date.now();
  // Announcing the departure is worth the wait only while etcd answers (the lease is fresh).
  if (live && session.isFresh() && ownership.held.size > 0) {
    let others = false;
    try {
      await ns
        .if(nodeKey(nodeId), 'Mod', '==', session.nodeKeyRevision)
        .then(ns.delete().key(nodeKey(nodeId)))
        .commit();
      const state = await readState(ns, slotCount);
      others = [...state.nodes.keys()].some((id) => id !== nodeId && !state.drained.has(id));
    } catch (error) {
      logger.warn({ err: error }, 'could not unregister from etcd; releasing slots now');
    }
    // Until the others have seen us go we keep firing, so a slot is without a firing owner only
    // for the handoff itself: our release, the key's deletion, their claim.
    if (others) await sleep(LEAVE_NOTICE_MS);
  }
  // Everything the engine fires stops before any key goes, whatever we think we acquired.
  const firing = [...ownership.engaged()].sort((a, b) => a - b);
  if (firing.length > 0) await ownership.release(firing);
  if (live) {
    const { errored, errors } = await guardedTxns(
      ns,
      [...ownership.held],
      ([slot, held]) => ({ key: ownerKey(slot), createRevision: held.revision }),
      ([slot]) => ns.delete().key(ownerKey(slot)),
    );
    if (errors.length > 0)
      logger.warn(
        { err: errors[0], slots: errored.size },
        'could not delete some owner keys; they go when the lease is revoked or expires',
      );
  }
  ownership.forgetHeld();
  if (session) sessions.retire(session);
  await sessions.revokeStale();
  logger.info({ slots: firing.length, tookMs: Date.now() - startedMs }, 'left the cluster');
}
