/**
 * Reconcile passes: when they run (a watch event, a resync, a debounce timer; one at a time), and
 * what one does: join again if the lease was lost, read the whole prefix, compute the target
 * and carry out the plan (plan.ts): stop firing, hand over, claim, acquire.
 *
 * Every change of ownership happens inside a pass, and passes are serialized, so the engine sees
 * acquire and release calls in the order ownership changed. Acquisitions are not awaited (the
 * next pass must not wait for a slot's epoch raise to claim the next released key); they run in
 * order in the engine queue of ownership.ts.
 */
import type { Namespace } from 'etcd3';
import { guardedTxns, readState } from './etcd-io';
import { ownerKey } from './keys';
import type { Settings } from './options';
import type { Ownership, Acquired } from './ownership';
import { planPass } from './plan';
import type { HeldSlot } from './plan';
import type { Session, Sessions } from './session';
import type { Rebalance } from './target';

/** After a failed or refused acquisition, the next try waits this long. */
const ACQUIRE_RETRY_MS = 1000;

export class Passes {
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs = Number.POSITIVE_INFINITY;
  private loop: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failingSince: number | undefined;
  /** The target of the last pass: what an acquisition checks when it runs. */
  private target: ReadonlyMap<number, string> | undefined;
  /** Slot → until when it is not claimed again: its key was given back after a refusal. */
  private readonly holdOff = new Map<number, number>();

  constructor(
    private readonly settings: Settings,
    private readonly ns: Namespace,
    private readonly sessions: Sessions,
    private readonly ownership: Ownership,
    private readonly rebalance: Rebalance,
  ) {}

  /** Runs a pass after `delayMs` (or sooner if one is already due sooner). */
  kick(delayMs: number): void {
    if (this.stopped) return;
    const dueMs = Date.now() + delayMs;
    if (this.timer && this.timerDueMs <= dueMs) return;
    clearTimeout(this.timer);
    this.timerDueMs = dueMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueMs = Number.POSITIVE_INFINITY;
      this.run();
    }, delayMs);
  }

  /** No pass starts any more; resolves when the one running (if any) is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.loop;
  }

  private run(): void {
    if (this.loop) {
      this.again = true;
      return;
    }
    this.loop = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
          this.recovered();
        } catch (error) {
          this.failed(error);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.loop = undefined;
    });
  }

  private recovered(): void {
    if (this.failingSince === undefined) return;
    this.settings.logger.info(
      { failedForMs: Date.now() - this.failingSince },
      'etcd reachable again',
    );
    this.failingSince = undefined;
  }

  private failed(error: unknown): void {
    // Logged once per outage: with etcd down every resync fails the same way.
    if (this.failingSince === undefined) {
      this.failingSince = Date.now();
      this.settings.logger.warn(
        { err: error, firing: this.ownership.engaged().size },
        'cluster pass failed (etcd unavailable?); the engine keeps firing its slots, fenced; retrying',
      );
    } else {
      this.settings.logger.debug({ err: error }, 'cluster pass failed again');
    }
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    const { nodeId, slotCount, logger } = this.settings;
    let session = this.sessions.current;
    if (!session || session.lost) {
      // Our keys are gone with the lease (or going). The engine keeps firing its slots (under
      // the store's epoch lock, since ownership is not confirmed) until the new state says
      // whether each is still ours.
      if (session) {
        this.ownership.forgetHeld();
        this.rebalance.noteRejoin();
      }
      session = await this.sessions.join();
      if (this.stopped) return;
      const firing = this.ownership.engaged().size;
      if (firing > 0) logger.info({ firing }, 'joined again; reconciling the slots still fired');
    }
    const state = await readState(this.ns, slotCount);
    if (this.sessions.current !== session || session.lost || this.stopped) return;
    const self = state.nodes.get(nodeId);
    if (!self || self.lease !== session.leaseId) {
      // Our registration is gone: the lease expired (we were paused or cut off past the TTL)
      // even if etcd has not answered a keepalive to say so yet.
      session.markLost(new Error(`node key of ${nodeId} is gone or held by another lease`));
      return;
    }
    const { assignment, recheckInMs } = this.rebalance.targetFor(state);
    if (recheckInMs !== undefined) this.kick(recheckInMs);
    this.target = assignment;
    const plan = planPass({
      me: nodeId,
      leaseId: session.leaseId,
      held: this.ownership.held,
      engaged: this.ownership.engaged(),
      state,
      target: assignment,
      slotCount,
    });
    const { ownership } = this;
    for (const owner of plan.adopt) ownership.hold(owner.slot, owner.createRevision);
    for (const slot of plan.forget) ownership.drop(slot);
    if (plan.forget.length > 0)
      logger.warn({ slots: plan.forget }, 'owner keys vanished or were replaced under us');

    // 1. Stop firing what goes to others, before any key goes.
    if (plan.stopFiring.length > 0) {
      await ownership.release(plan.stopFiring);
      logger.info({ slots: plan.stopFiring }, 'stopped firing slots owned elsewhere now');
    }
    // 2. Hand over (and remove stale keys of ours), then 3. take what the target gives us.
    await this.handOver(plan.release, plan.stale);
    if (!assignment || session.lost || !session.isFresh()) return;
    await this.claim(session, this.notHeldOff(plan.claim));
    this.acquire(session, assignment);
  }

  /**
   * Deletes the keys of released slots (guarded, so only the key we created). One transaction for
   * all of them, so the new owners see them go in one event and take them in one pass (one engine
   * acquisition instead of several queued one after the other).
   */
  private async handOver(
    release: readonly number[],
    stale: ReadonlyArray<{ slot: number; createRevision: number }>,
  ): Promise<void> {
    const { ownership, ns } = this;
    const releasing = release.flatMap((slot) => {
      const held = ownership.held.get(slot);
      if (held?.refused) this.holdOff.set(slot, Date.now() + ACQUIRE_RETRY_MS);
      return held ? [{ slot, createRevision: held.revision }] : [];
    });
    const deleted = await guardedTxns(
      ns,
      [...releasing, ...stale],
      (entry) => ({ key: ownerKey(entry.slot), createRevision: entry.createRevision }),
      (entry) => ns.delete().key(ownerKey(entry.slot)),
    );
    // Errored ones stay held and are retried next pass; the others are gone or were never ours.
    for (const entry of releasing) if (!deleted.errored.has(entry)) ownership.drop(entry.slot);
    if (releasing.length > 0)
      this.settings.logger.info(
        { slots: releasing.length, failed: deleted.errored.size },
        'released slots',
      );
    if (deleted.errors.length > 0) throw deleted.errors[0];
  }

  /** Leaves out the slots refused a moment ago, so a refusal cannot make passes loop hot. */
  private notHeldOff(slots: readonly number[]): number[] {
    const now = Date.now();
    return slots.filter((slot) => {
      const untilMs = this.holdOff.get(slot);
      if (untilMs === undefined) return true;
      if (untilMs <= now) {
        this.holdOff.delete(slot);
        return true;
      }
      this.kick(untilMs - now);
      return false;
    });
  }

  /** Creates the keys of free slots assigned to us, bound to our lease. */
  private async claim(session: Session, slots: readonly number[]): Promise<void> {
    if (slots.length === 0) return;
    const { ns } = this;
    const value = JSON.stringify({ node: this.settings.nodeId });
    const claimed = await guardedTxns(
      ns,
      slots,
      (slot) => ({ key: ownerKey(slot), createRevision: 0 }),
      (slot) => ns.put(ownerKey(slot)).value(value).lease(session.leaseId),
    );
    if (!session.lost)
      for (const [slot, revision] of claimed.committed) this.ownership.hold(slot, revision);
    if (claimed.committed.size < slots.length)
      this.settings.logger.debug(
        { wanted: slots.length, won: claimed.committed.size },
        'some slots were taken first',
      );
  }

  /** Queues the acquisition of held slots the target gives us that the engine does not fire yet. */
  private acquire(session: Session, assignment: ReadonlyMap<number, string>): void {
    const { nodeId, logger } = this.settings;
    const batch = this.ownership.unacquired((slot) => assignment.get(slot) === nodeId);
    if (batch.length === 0) return;
    const startedMs = Date.now();
    this.ownership
      .acquire(batch, (slot, held) => this.stillWanted(session, slot, held))
      .then(
        async (result) => {
          if (result.acquired.length > 0)
            logger.info(
              {
                slots: result.acquired.length,
                owned: this.ownership.owned().length,
                tookMs: Date.now() - startedMs,
              },
              'acquired slots',
            );
          // The next pass gives the refused keys back (and claims them again a second later).
          if (result.refused.length > 0) this.kick(0);
          await this.publishEpochs(session, result);
        },
        (error: unknown) => {
          logger.warn(
            { err: error, slots: batch.length },
            'acquiring slots in the engine failed; retrying',
          );
          this.kick(ACQUIRE_RETRY_MS);
        },
      )
      .catch((error: unknown) => logger.debug({ err: error }, 'could not publish some epochs'));
  }

  /** Checked when the acquisition runs: the session, the key and the target are still what they were. */
  private stillWanted(session: Session, slot: number, held: HeldSlot): boolean {
    return (
      !this.stopped &&
      this.sessions.current === session &&
      !session.lost &&
      session.isFresh() &&
      this.ownership.held.get(slot) === held &&
      this.target?.get(slot) === this.settings.nodeId
    );
  }

  /** Rewrites our owner keys with the epochs the store gave us, for the admin view (informational). */
  private async publishEpochs(session: Session, result: Acquired): Promise<void> {
    const publish = result.acquired.filter(
      ({ slot, held }) => this.ownership.held.get(slot) === held,
    );
    if (publish.length === 0 || session.lost) return;
    const { ns } = this;
    const { errors } = await guardedTxns(
      ns,
      publish,
      (entry) => ({ key: ownerKey(entry.slot), createRevision: entry.held.revision }),
      (entry) =>
        ns
          .put(ownerKey(entry.slot))
          .value(JSON.stringify({ node: this.settings.nodeId, epoch: entry.epoch }))
          .ignoreLease(),
    );
    if (errors.length > 0) throw errors[0];
  }
}
