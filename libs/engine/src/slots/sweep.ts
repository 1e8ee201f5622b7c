/**
 * The safety nets of the owned slots. Each mechanism that makes a message fire (the takeover
 * load, the insert path, hints, parked retries) has a way to miss: a reply lost after a commit, a
 * bug, a backlog cut at the load limit. The sweep finds what was missed, fires it, and counts it
 * in `hourglass_sweep_found_total` (by kind; `stranded` and `stuck_delivering` should stay 0).
 *
 * - **Stranded**: scheduled rows overdue by more than `sweepGraceMs` that nothing in the engine
 *   holds (not in the wheel, not parked, not backed off, not being claimed or released). It runs
 *   only while the wheel is caught up (nothing in it overdue by more than the grace), because then
 *   an overdue row cannot be waiting in the wheel: the wheel keeps no index to ask. Rows of slots
 *   whose takeover load was cut at `overdueLoadLimit` are counted as `backfill`, not as missed.
 * - **Stuck delivering**: rows claimed under this node's current epochs that no claim of this
 *   node accounts for (a mark or release that was lost). Seen in two sweeps in a row, they are
 *   released and fired again.
 * - The age of the oldest overdue message, `hourglass_oldest_overdue_seconds`.
 */
import type { MessageRef, TimingWheel } from '@hourglass/core';
import type { ClaimLedger } from '../firing/claims';
import type { Retries } from '../firing/retry';
import type { EngineDeps, ResolvedOptions } from '../options';

const STUCK_PAGE = 10_000;

export interface SweepParts {
  readonly deps: EngineDeps;
  readonly options: ResolvedOptions;
  readonly wheel: TimingWheel;
  readonly leases: ReadonlyMap<number, number>;
  readonly ledger: ClaimLedger;
  readonly retries: Retries;
  readonly backfilling: Set<number>;
  readonly wake: () => void;
}

export class Sweeper {
  private running: Promise<void> | undefined;
  /** Rows found stuck by the previous sweep, with the epoch they were claimed under. */
  private suspects = new Map<number, number>();

  constructor(private readonly parts: SweepParts) {}

  /** Runs one sweep unless one is running; resolves when it is done. */
  sweep(): Promise<void> {
    this.running ??= this.run()
      .catch((error: unknown) =>
        this.parts.deps.logger.warn({ err: error }, 'sweep failed; retrying on the next interval'),
      )
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** Whether the wheel has nothing overdue by more than the grace, so the store can be asked. */
  caughtUp(nowMs: number): boolean {
    const next = this.parts.wheel.nextDueMs();
    return next === undefined || next >= nowMs - this.parts.options.sweepGraceMs;
  }

  private async run(): Promise<void> {
    if (this.parts.leases.size === 0) {
      this.parts.deps.metrics.overdue(0);
      return;
    }
    await this.sweepOverdue();
    await this.sweepStuck();
  }

  private async sweepOverdue(): Promise<void> {
    const { deps, options, wheel, leases, ledger, retries } = this.parts;
    const now = deps.clock.now();
    const wheelNext = wheel.nextDueMs();
    if (!this.caughtUp(now)) {
      deps.metrics.overdue(wheelNext === undefined ? 0 : Math.max(0, now - wheelNext));
      return;
    }
    const slots = [...leases.keys()];
    const limit = options.overdueLoadLimit;
    const rows = await deps.store.loadDue(slots, 0, now - options.sweepGraceMs, limit);
    const oldest = Math.min(rows[0]?.dueMs ?? now, wheelNext ?? now);
    deps.metrics.overdue(Math.max(0, now - oldest));
    let stranded = 0;
    let backfill = 0;
    for (const row of rows) {
      if (leases.get(row.slot) === undefined) continue;
      if (ledger.accounts(row.seq) || retries.accounts(row.seq)) continue;
      wheel.insert(row);
      if (this.parts.backfilling.has(row.slot)) backfill++;
      else stranded++;
    }
    if (rows.length < limit) this.parts.backfilling.clear();
    if (backfill > 0) deps.metrics.sweepFound('backfill', backfill);
    if (stranded > 0) {
      deps.metrics.sweepFound('stranded', stranded);
      deps.logger.warn(
        { messages: stranded },
        'sweep found overdue messages nothing was holding; firing them',
      );
    }
    if (stranded + backfill > 0) this.parts.wake();
  }

  private async sweepStuck(): Promise<void> {
    const { deps, leases, ledger, retries } = this.parts;
    const snapshot = new Map(leases);
    const rows = await deps.store.findDelivering(snapshot, STUCK_PAGE);
    const stuck = rows.filter((row) => !ledger.accounts(row.seq) && !retries.accounts(row.seq));
    deps.metrics.stuckDelivering(stuck.length);
    const confirmed: MessageRef[] = [];
    const next = new Map<number, number>();
    for (const row of stuck) {
      const epoch = snapshot.get(row.slot)!;
      if (this.suspects.get(row.seq) === epoch) confirmed.push(row);
      else next.set(row.seq, epoch);
    }
    this.suspects = next;
    if (confirmed.length === 0) return;
    deps.logger.warn(
      { messages: confirmed.length },
      'sweep found claims nothing accounts for; putting them back',
    );
    deps.metrics.sweepFound('stuck_delivering', confirmed.length);
    const released = await retries.release(confirmed, snapshot, {
      error: 'claim abandoned; found by the sweep',
      countAttempt: false,
      giveUp: false,
    });
    if (released) retries.later(confirmed, 0);
  }
}
