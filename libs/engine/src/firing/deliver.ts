/**
 * The delivery stage of the pipeline: hands due claimed messages to the delivery port and settles
 * each outcome. Delivered messages are marked; what waits for a target that is down is parked;
 * what a target refused counts an attempt (see ./retry.ts).
 *
 * While the coordinator cannot confirm ownership, delivery runs inside the store's epoch lock and
 * marks before the lock is let go: a takeover's bump waits for both, and once it has committed
 * nothing more of the slot is delivered here (docs/cluster.md).
 */
import type { ClaimedMessage, DeliveryOutcome, MessageRef } from '@hourglass/core';
import { DependencyUnavailableError } from '@hourglass/core';
import type { EngineDeps, ResolvedOptions } from '../options';
import type { ClaimLedger } from './claims';
import type { MarkQueue } from './marks';
import type { Retries } from './retry';
import type { TargetFiring } from './targets';

export interface DelivererParts {
  readonly deps: EngineDeps;
  readonly options: ResolvedOptions;
  readonly ledger: ClaimLedger;
  readonly marks: MarkQueue;
  readonly retries: Retries;
  readonly epochOf: (slot: number) => number | undefined;
  /** The store showed another node raised these slots' epochs (`messages` matched nothing). */
  readonly fenced: (slots: readonly number[], messages: number) => void;
  /** Whether marks should wait (a backlog is being fired). */
  readonly holdMarks: () => boolean;
  /** Messages with a target list (callbacks, fan-out) go here. */
  readonly targets: TargetFiring;
  /** Work that outlives the delivery round (callbacks answered later); stop() waits for it. */
  readonly background: (work: Promise<void>) => void;
}

export class Deliverer {
  constructor(private readonly parts: DelivererParts) {}

  async deliverHeld(
    held: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
  ): Promise<void> {
    const withTargets = held.filter((message) => message.targets);
    const messages = withTargets.length === 0 ? held : held.filter((message) => !message.targets);
    if (this.parts.deps.ownershipConfirmed?.() ?? true) {
      // Not awaited: each of these settles when its own targets answered, and the next round
      // of delivery must not wait for a slow receiver.
      if (withTargets.length > 0)
        this.parts.background(
          this.parts.targets
            .fire(withTargets, leases)
            .catch((error: unknown) =>
              this.parts.deps.logger.error({ err: error }, 'delivering to targets failed'),
            ),
        );
      if (messages.length === 0) return;
      const outcomes = await this.deliver(messages);
      await this.settleOutcomes(messages, leases, outcomes, false);
      return;
    }
    await this.deliverUnderEpochLock(held, leases);
  }

  /**
   * Ownership unconfirmed (the coordinator is cut off): deliver only what the store confirms,
   * holding its epoch lock across delivery and mark, so a takeover's bump waits for both.
   */
  private async deliverUnderEpochLock(
    messages: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
  ): Promise<void> {
    const { store } = this.parts.deps;
    try {
      await store.withEpochLock(leases, async (confirmed) => {
        const ok = messages.filter((message) => confirmed.has(message.slot));
        const lost = messages.filter((message) => !confirmed.has(message.slot));
        if (lost.length > 0) {
          // Their rows were reset by the takeover; nothing of them is ours any more.
          this.parts.ledger.settle(lost);
          const slots = [...new Set(lost.map((message) => message.slot))].filter(
            (slot) => this.parts.epochOf(slot) === leases.get(slot),
          );
          this.parts.fenced(slots, lost.length);
        }
        if (ok.length === 0) return;
        const withTargets = ok.filter((message) => message.targets);
        const plain = ok.filter((message) => !message.targets);
        await Promise.all([
          withTargets.length > 0 ? this.parts.targets.fire(withTargets, leases, true) : undefined,
          plain.length > 0
            ? this.deliver(plain).then((outcomes) =>
                this.settleOutcomes(plain, leases, outcomes, true),
              )
            : undefined,
        ]);
      });
    } catch (error) {
      if (!(error instanceof DependencyUnavailableError)) throw error;
      // The store is unreachable too: nothing was delivered. Put them back for later.
      this.parts.deps.logger.warn(
        { err: error, messages: messages.length },
        'ownership unconfirmed and the store unreachable; delivering later',
      );
      const released = await this.parts.retries.release(messages, leases, {
        error: 'not delivered: slot ownership could not be confirmed',
        countAttempt: false,
        giveUp: false,
      });
      if (released) this.parts.retries.later(messages, this.parts.options.retryInitialMs);
    }
  }

  private async deliver(messages: readonly ClaimedMessage[]): Promise<DeliveryOutcome[]> {
    const started = performance.now();
    let outcomes: DeliveryOutcome[];
    try {
      outcomes = await this.parts.deps.delivery.deliver(messages);
    } catch (error) {
      // The port does not throw for a message's failure; this is a bug or an unexpected outage.
      const text = error instanceof Error ? error.message : String(error);
      outcomes = messages.map(() => ({
        kind: 'failed',
        target: 'unknown',
        error: text,
        retriable: true,
      }));
    }
    this.parts.deps.metrics.fireStage('produce', performance.now() - started, messages.length);
    return outcomes;
  }

  /** Marks what was delivered, parks what waits for a target, counts what a target refused. */
  private async settleOutcomes(
    messages: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
    outcomes: readonly DeliveryOutcome[],
    markNow: boolean,
  ): Promise<void> {
    const { deps, retries, marks } = this.parts;
    const ackedAt = deps.clock.now();
    const delivered: ClaimedMessage[] = [];
    const down = new Map<string, { error: string; messages: ClaimedMessage[] }>();
    const refused = new Map<string, ClaimedMessage[]>();
    const answered = new Set<string>();
    messages.forEach((message, index) => {
      const outcome = outcomes[index] ?? {
        kind: 'failed' as const,
        target: 'unknown',
        error: 'no outcome',
        retriable: true,
      };
      if (outcome.kind === 'delivered') {
        delivered.push(message);
        answered.add(outcome.target);
      } else if (outcome.retriable) {
        const entry = down.get(outcome.target) ?? { error: outcome.error, messages: [] };
        entry.messages.push(message);
        down.set(outcome.target, entry);
      } else {
        answered.add(outcome.target);
        const list = refused.get(outcome.error) ?? [];
        list.push(message);
        refused.set(outcome.error, list);
      }
    });
    for (const target of answered) retries.answered(target);
    if (delivered.length > 0) {
      deps.metrics.delivered(delivered, ackedAt);
      const refs = delivered.map((message) => ({ seq: message.seq, slot: message.slot }));
      if (markNow && (await this.markInline(refs, leases, ackedAt))) this.parts.ledger.settle(refs);
      else marks.add({ refs, leases, ackedAt }, this.parts.holdMarks());
    }
    for (const [target, { error, messages: waiting }] of down) {
      deps.metrics.deliveryFailed(true, waiting.length);
      await retries.park(target, waiting, leases, error);
    }
    for (const [error, list] of refused) {
      deps.metrics.deliveryFailed(false, list.length);
      deps.logger.warn({ err: error, messages: list.length }, 'delivery refused by its target');
      await retries.refused(list, leases, error);
    }
  }

  /** One mark inside the epoch lock; false if it failed (the mark queue retries it then). */
  private async markInline(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    ackedAt: number,
  ): Promise<boolean> {
    try {
      await this.parts.deps.store.markDelivered(refs, leases, ackedAt);
      return true;
    } catch {
      return false;
    }
  }
}
