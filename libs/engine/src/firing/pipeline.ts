/**
 * The fire pipeline: wheel → claim → hold until due → deliver → mark, for the slots the engine
 * owns. Invariants (docs/architecture.md explains why they hold):
 * - Never early: the wheel only returns items whose due time has passed (minus `claimAheadMs`),
 *   the store's claim re-checks `deliver_at <= now + claimAheadMs`, and a claimed message is
 *   handed to delivery only once its own due time has passed.
 * - Fenced: every claim and mark carries the slot's epoch. While the coordinator cannot confirm
 *   ownership, delivery runs under the store's epoch lock, so once another node raised a slot's
 *   epoch nothing more of it is delivered here.
 * - Nothing undelivered is marked delivered: a mark follows the target's acknowledgement.
 * - One delivery request at a time: messages coming due meanwhile go into the next, larger one.
 */
import type { ClaimedMessage, MessageRef, TimingWheel, WheelItem } from '@hourglass/core';
import type { EngineDeps, ResolvedOptions } from '../options';
import type { ClaimLedger } from './claims';
import { Deliverer } from './deliver';
import type { HeldClaims } from './held';
import type { MarkQueue } from './marks';
import type { Retries } from './retry';
import type { TargetFiring } from './targets';

/** Checks whether a whole slot's refs came back unclaimed because its epoch moved, at most this often. */
const FENCE_CHECK_INTERVAL_MS = 500;

export interface PipelineParts {
  readonly deps: EngineDeps;
  readonly options: ResolvedOptions;
  readonly wheel: TimingWheel;
  readonly ledger: ClaimLedger;
  readonly held: HeldClaims;
  readonly marks: MarkQueue;
  readonly retries: Retries;
  readonly epochOf: (slot: number) => number | undefined;
  /** The store showed another node raised these slots' epochs: stop firing them. */
  readonly slotsLost: (slots: readonly number[]) => void;
  readonly targets: TargetFiring;
}

export class FirePipeline {
  /** Claims and deliveries under way; releasing slots and stopping wait for them. */
  private readonly inFlight = new Set<Promise<void>>();
  /**
   * Claims under way. One at a time while firing keeps up: due messages then pile up into the
   * next, larger batch instead of many small claims queueing on Postgres commits. With a backlog
   * (the last batch taken was full) up to `fireConcurrency` run at once.
   */
  private claiming = 0;
  private backlogged = false;
  private delivering = false;
  private running = false;
  /** Set by beginDrain(): no more claims, but what is claimed is still delivered. */
  private draining = false;
  private fireTimer: NodeJS.Timeout | undefined;
  private armedAtMs = Number.POSITIVE_INFINITY;
  private fenceCheck: { running: boolean; lastMs: number } = { running: false, lastMs: 0 };

  private readonly deliverer: Deliverer;

  constructor(private readonly parts: PipelineParts) {
    this.deliverer = new Deliverer({
      deps: parts.deps,
      options: parts.options,
      ledger: parts.ledger,
      marks: parts.marks,
      retries: parts.retries,
      epochOf: parts.epochOf,
      fenced: (slots, messages) => this.fenced(slots, messages),
      holdMarks: () => this.backlogged && !this.draining,
      targets: parts.targets,
      background: (work) => this.track(work.finally(() => this.pump())),
    });
  }

  get batchesInFlight(): number {
    return this.inFlight.size;
  }

  start(): void {
    this.running = true;
    this.draining = false;
    this.arm();
  }

  /** Stops claiming; what is held is still delivered at its due time. */
  beginDrain(): void {
    this.draining = true;
    this.parts.marks.flush();
  }

  /** Resolves once nothing is claimed, held or being delivered (after beginDrain). */
  async drained(): Promise<void> {
    while (this.inFlight.size > 0 || this.parts.held.size > 0) {
      if (this.inFlight.size === 0) {
        // Held messages not due yet: wait for the earliest (at most claimAheadMs away).
        const waitMs = (this.parts.held.nextDueMs() ?? 0) - this.parts.deps.clock.now();
        await new Promise((resolve) => setTimeout(resolve, Math.max(1, waitMs)));
        this.pump();
        continue;
      }
      await Promise.allSettled([...this.inFlight]);
    }
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.fireTimer);
    this.fireTimer = undefined;
    this.armedAtMs = Number.POSITIVE_INFINITY;
  }

  /** Waits for the claims and deliveries under way now, then for every mark queued by then. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    await this.parts.marks.settle();
  }

  /** Resolves when nothing is in flight at all (for stop()). */
  async quiesce(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Forgets claimed-but-undelivered messages of released slots and puts them back to `scheduled`
   * under their old epoch, so the next owner fires them (its takeover would reset them anyway).
   */
  async dropSlots(slots: ReadonlySet<number>): Promise<void> {
    const { messages, leases } = this.parts.held.dropSlots(slots);
    if (messages.length === 0) return;
    try {
      await this.parts.deps.store.releaseClaims(
        messages,
        leases,
        { error: 'slot handed over before its due time', countAttempt: false, giveUp: false },
        this.parts.deps.clock.now(),
      );
    } catch (error) {
      this.parts.deps.logger.warn(
        { err: error, messages: messages.length },
        'releasing claims of released slots failed; the next owner resets them',
      );
    } finally {
      this.parts.ledger.settle(messages);
    }
  }

  /**
   * Moves messages along: delivers the claimed ones that are due, claims those coming due within
   * `claimAheadMs`, and sets the timer for whatever comes next.
   */
  pump(): void {
    if (!this.running) return;
    if (!this.delivering) this.startDelivery();
    const { wheel, options, retries } = this.parts;
    while (this.canClaim()) {
      const items = wheel.advance(
        this.parts.deps.clock.now() + options.claimAheadMs,
        options.fireBatchSize,
      );
      this.backlogged = items.length === options.fireBatchSize;
      if (items.length === 0) break;
      for (const item of items) retries.fired(item.seq);
      this.track(
        this.claimBatch(items).catch((error: unknown) =>
          this.parts.deps.logger.error({ err: error }, 'claim failed'),
        ),
      );
    }
    // After the claims: the loop may just have found the backlog over, and marks held back during
    // it must go now, since no further ack may come to flush them.
    if (!this.backlogged || this.draining) this.parts.marks.flush();
    this.arm();
  }

  /** Sets the fire timer for the earliest due item, unless an earlier one is already set. */
  arm(): void {
    if (!this.running) return;
    // What cannot start now is started by the claim or delivery that finishes first; a timer
    // would only spin until then.
    const heldDue = this.delivering ? undefined : this.parts.held.nextDueMs();
    const wheelDue = this.canClaim() ? this.parts.wheel.nextDueMs() : undefined;
    const claimAt = wheelDue === undefined ? undefined : wheelDue - this.parts.options.claimAheadMs;
    const next =
      heldDue === undefined
        ? claimAt
        : claimAt === undefined
          ? heldDue
          : Math.min(heldDue, claimAt);
    if (next === undefined || next >= this.armedAtMs) return;
    clearTimeout(this.fireTimer);
    this.armedAtMs = next;
    this.fireTimer = setTimeout(
      () => {
        this.fireTimer = undefined;
        this.armedAtMs = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, next - this.parts.deps.clock.now()),
    );
  }

  private get heldLimit(): number {
    return this.parts.options.fireBatchSize * this.parts.options.fireConcurrency;
  }

  private canClaim(): boolean {
    const limit = this.backlogged ? this.parts.options.fireConcurrency : 1;
    return (
      !this.draining &&
      this.claiming < limit &&
      this.parts.held.size < this.heldLimit &&
      this.parts.targets.messagesInFlight < this.parts.options.maxTargetMessagesInFlight
    );
  }

  private track(work: Promise<void>): void {
    const tracked = work.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  /** Claims messages coming due and holds them until their due time. */
  private async claimBatch(items: readonly WheelItem[]): Promise<void> {
    this.claiming++;
    const { deps, ledger } = this.parts;
    try {
      const leases = new Map<number, number>();
      const refs: MessageRef[] = [];
      for (const item of items) {
        const epoch = this.parts.epochOf(item.slot);
        if (epoch === undefined) continue;
        leases.set(item.slot, epoch);
        refs.push({ seq: item.seq, slot: item.slot });
      }
      if (refs.length === 0) return;
      let claimed: ClaimedMessage[];
      ledger.begin(refs);
      try {
        const started = performance.now();
        claimed = await deps.store.claim(
          refs,
          leases,
          deps.clock.now() + this.parts.options.claimAheadMs,
        );
        deps.metrics.fireStage('claim', performance.now() - started, claimed.length);
      } catch (error) {
        ledger.end(refs, []);
        await this.recoverFromFailedClaim(refs, leases, error);
        return;
      }
      ledger.end(refs, claimed);
      if (claimed.length < refs.length) this.checkFenced(refs, claimed, leases);
      // A slot released (or taken over again) while claiming: its claims are the next
      // acquisition's to reset.
      const kept: ClaimedMessage[] = [];
      const stale: ClaimedMessage[] = [];
      for (const message of claimed)
        (this.parts.epochOf(message.slot) === leases.get(message.slot) ? kept : stale).push(
          message,
        );
      ledger.settle(stale);
      if (kept.length > 0) this.parts.held.add(kept, leases);
    } finally {
      this.claiming--;
      this.pump();
    }
  }

  /**
   * The claim may have committed although it failed here. Messages of the batch that no claim of
   * this node accounts for are put back to `scheduled` (fenced) before they are wheeled again, or
   * they would stay `delivering`. One that a concurrent claim may still take is left to it.
   */
  private async recoverFromFailedClaim(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    error: unknown,
  ): Promise<void> {
    this.parts.deps.logger.warn({ err: error, messages: refs.length }, 'claim failed; will retry');
    const unknown = refs.filter((ref) => !this.parts.ledger.accounts(ref.seq));
    const released = await this.parts.retries.release(unknown, leases, {
      error: 'claim outcome unknown',
      countAttempt: false,
      giveUp: false,
    });
    if (released) this.parts.retries.later(unknown, this.parts.options.retryInitialMs);
  }

  /**
   * A slot none of whose refs was claimed may have been taken over: if the store shows another
   * epoch than the one this node fires it under, the claims were fenced, and the slot is lost.
   */
  private checkFenced(
    refs: readonly MessageRef[],
    claimed: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
  ): void {
    const now = this.parts.deps.clock.now();
    if (this.fenceCheck.running || now - this.fenceCheck.lastMs < FENCE_CHECK_INTERVAL_MS) return;
    const taken = new Set(claimed.map((message) => message.slot));
    const refsBySlot = new Map<number, number>();
    for (const ref of refs)
      if (!taken.has(ref.slot)) refsBySlot.set(ref.slot, (refsBySlot.get(ref.slot) ?? 0) + 1);
    if (refsBySlot.size === 0) return;
    this.fenceCheck = { running: true, lastMs: now };
    void this.parts.deps.store
      .currentEpochs([...refsBySlot.keys()])
      .then((epochs) => {
        const lost = [...refsBySlot.keys()].filter(
          (slot) =>
            epochs.get(slot) !== leases.get(slot) && this.parts.epochOf(slot) === leases.get(slot),
        );
        this.fenced(
          lost,
          lost.reduce((n, slot) => n + (refsBySlot.get(slot) ?? 0), 0),
        );
      })
      .catch((error: unknown) =>
        this.parts.deps.logger.debug({ err: error }, 'could not check slot epochs after a claim'),
      )
      .finally(() => (this.fenceCheck.running = false));
  }

  fenced(slots: readonly number[], messages: number): void {
    if (slots.length === 0) return;
    this.parts.deps.metrics.fencedClaims(messages);
    this.parts.deps.logger.warn(
      { slots, messages },
      'another node raised the epoch of slots this node fired: dropping them',
    );
    this.parts.slotsLost(slots);
  }

  /** Delivers every held message that is due, as one request; the next starts when it answered. */
  private startDelivery(): void {
    const { messages, leases } = this.parts.held.takeDue(
      this.parts.deps.clock.now(),
      this.heldLimit,
    );
    if (messages.length === 0) return;
    this.delivering = true;
    this.track(
      this.deliverHeld(messages, leases)
        .catch((error: unknown) => this.parts.deps.logger.error({ err: error }, 'delivery failed'))
        .finally(() => {
          this.delivering = false;
          this.pump();
        }),
    );
  }

  private deliverHeld(
    messages: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
  ): Promise<void> {
    return this.deliverer.deliverHeld(messages, leases);
  }
}
