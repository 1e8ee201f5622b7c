/**
 * Marking delivered messages `delivered`, off the latency path: consumers already have them.
 * Acks that arrive while a mark runs are merged into the next statement, so a burst costs few
 * commits; while a backlog is being fired, marks wait (up to {@link MARK_FLUSH_LIMIT} messages)
 * so that Postgres spends its time on the claims delivery waits for.
 *
 * A mark is retried until it succeeds for as long as the engine runs (and for a bounded time
 * while it stops): a row left `delivering` would count against the app's pending quota, refuse
 * its cancel, and be delivered again by the slot's next owner. The statement is fenced, so a mark
 * of a slot another node has taken meanwhile changes nothing and succeeds.
 */
import type { Logger, MessageRef, MessageStore } from '@hourglass/core';
import type { EngineMetrics } from '../metrics';
import type { ClaimLedger } from './claims';

/** Most messages marked delivered by one statement when acks pile up. */
export const MARK_FLUSH_LIMIT = 20_000;
const MARK_RETRY_MAX_MS = 5_000;

interface PendingMark {
  /** Refs only: the payloads can go once the target has them. */
  readonly refs: readonly MessageRef[];
  readonly leases: ReadonlyMap<number, number>;
  readonly ackedAt: number;
}

export interface MarkQueueDeps {
  readonly store: MessageStore;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  readonly ledger: ClaimLedger;
  /** Whether a failed mark is worth another try (the engine runs, or stops within its deadline). */
  readonly keepTrying: () => boolean;
  readonly sleep: (ms: number) => Promise<void>;
}

export class MarkQueue {
  private pending: PendingMark[] = [];
  private pendingRefs = 0;
  private flushing: Promise<void> | undefined;
  /** Marks enqueued and marks flushed (or given up) so far: lets a release wait for just its own. */
  private enqueued = 0;
  private flushed = 0;
  private waiters: Array<{ upTo: number; resolve: () => void }> = [];

  constructor(private readonly deps: MarkQueueDeps) {}

  /** Queues a mark; `hold` keeps it back while a backlog is fired (up to the flush limit). */
  add(mark: PendingMark, hold: boolean): void {
    this.pending.push(mark);
    this.pendingRefs += mark.refs.length;
    this.enqueued++;
    if (hold && this.pendingRefs < MARK_FLUSH_LIMIT) return;
    this.flush();
  }

  /** Starts flushing what is queued, unless a flush is running (it takes what arrives meanwhile). */
  flush(): void {
    if (this.pending.length === 0) return;
    this.flushing ??= this.run().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Resolves once every mark queued so far has been flushed. */
  settle(): Promise<void> {
    const upTo = this.enqueued;
    if (this.flushed >= upTo) return Promise.resolve();
    this.flush();
    return new Promise<void>((resolve) => this.waiters.push({ upTo, resolve }));
  }

  /** Resolves when the flush under way (if any) is done. */
  async idle(): Promise<void> {
    this.flush();
    while (this.flushing) await this.flushing;
  }

  private async run(): Promise<void> {
    while (this.pending.length > 0) {
      const group = this.takeGroup();
      this.pendingRefs -= group.refs.length;
      const started = performance.now();
      await this.markUntilDone(group);
      this.deps.metrics.fireStage('mark', performance.now() - started, group.refs.length);
      this.deps.ledger.settle(group.refs);
      this.flushed += group.marks;
      this.waiters = this.waiters.filter((waiter) => {
        if (waiter.upTo > this.flushed) return true;
        waiter.resolve();
        return false;
      });
    }
  }

  /** Takes pending marks from the front while their leases agree (a slot re-acquired has a new epoch). */
  private takeGroup(): PendingMark & { marks: number } {
    const refs: MessageRef[] = [];
    const leases = new Map<number, number>();
    let ackedAt = 0;
    let marks = 0;
    while (this.pending.length > 0) {
      const next = this.pending[0]!;
      const conflicts = [...next.leases].some(
        ([slot, epoch]) => (leases.get(slot) ?? epoch) !== epoch,
      );
      if (marks > 0 && (conflicts || refs.length + next.refs.length > MARK_FLUSH_LIMIT)) break;
      this.pending.shift();
      marks++;
      for (const ref of next.refs) refs.push(ref);
      for (const [slot, epoch] of next.leases) leases.set(slot, epoch);
      ackedAt = Math.max(ackedAt, next.ackedAt);
    }
    return { refs, leases, ackedAt, marks };
  }

  private async markUntilDone(group: PendingMark): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.deps.store.markDelivered(group.refs, group.leases, group.ackedAt);
        return;
      } catch (error) {
        if (!this.deps.keepTrying()) {
          this.deps.logger.error(
            { err: error, messages: group.refs.length },
            'marking delivered failed while stopping; the next owner of their slots delivers them again',
          );
          return;
        }
        if (attempt % 10 === 0)
          this.deps.logger.warn(
            { err: error, messages: group.refs.length, attempt },
            'marking delivered failed; retrying',
          );
        await this.deps.sleep(Math.min(MARK_RETRY_MAX_MS, 100 * 2 ** attempt));
      }
    }
  }
}
