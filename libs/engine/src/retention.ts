/**
 * The retention job of a node (issue 14, docs/adr/0008): on the `archive.scheduler` cron, it
 * removes the finished messages of the slots this node owns once their retention has passed
 * (moving them to the day-partitioned archive in `move` mode), drops archive days past their own
 * retention, and folds the message counters' deltas every `compactIntervalMs`.
 *
 * Why it never slows firing:
 * - One statement at a time per node: passes never overlap (a pass still running when the next
 *   cron time comes makes that run a no-op), batches run one after the other, and the store has
 *   a single connection of its own (PgRetentionStore), so the job never holds a connection the
 *   firing path waits for.
 * - Bounded batches (`batchSize` rows, one app and final state each, read through an index that
 *   holds only finished rows) with a pause of `pauseMs` between two, so a backlog of millions is
 *   worked off as a steady trickle instead of one long statement.
 * - Only the slot owner removes a slot's rows, fenced by the epoch (see sql/retention.ts): the
 *   leases are read again before every batch, so a slot handed off mid-pass is left alone.
 *
 * Time comes from the injected clock (cutoffs, the next run); only the waiting uses timers.
 */
import type {
  Clock,
  FinishedState,
  Logger,
  RetentionPeriods,
  RetentionStore,
  SlotLease,
} from '@hourglass/core';
import { archiveWindow, planRemoval } from '@hourglass/core';
import { Cron } from 'croner';
import type { EngineMetrics } from './metrics';

/**
 * The cron options of `archive.scheduler` (the same as the config check's): 5 fields, or 6 with
 * seconds first; `sloppyRanges` accepts Quartz's `0/3` as in delay-server's `0 0 0/3 * * ?`.
 */
export const RETENTION_CRON_OPTIONS = {
  paused: true,
  sloppyRanges: true,
  mode: '5-or-6-parts',
} as const;
/** Longest single timer: the next run is recomputed at least this often (clock jumps, long gaps). */
const MAX_TIMER_MS = 60_000;

export interface RetentionJobOptions {
  /** Cron expression of the removal passes. */
  readonly scheduler: string;
  readonly mode: 'delete' | 'move';
  /** Default retention per final state, in ms (apps may override, see AppRetention). */
  readonly periods: RetentionPeriods;
  /** Days an archive day partition is kept (move mode). */
  readonly archiveRetentionDays: number;
  /** Rows per removal statement. */
  readonly batchSize: number;
  /** Pause between two removal statements. */
  readonly pauseMs: number;
  /** How often the counters' deltas are folded. */
  readonly compactIntervalMs: number;
}

export interface RetentionJobDeps {
  readonly store: RetentionStore;
  /** The slots this node owns and their epochs, now (DelayEngine.ownedSlots). */
  readonly ownedSlots: () => readonly SlotLease[];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
}

/** What one pass did. */
export interface RetentionPassReport {
  readonly removed: Readonly<Record<FinishedState, number>>;
  readonly archived: number;
  /** Archive days dropped (UTC day numbers). */
  readonly droppedDays: readonly number[];
  /** Removal statements run. */
  readonly batches: number;
}

/** The first run of `cron` strictly after `afterMs`, or null when it has none. */
export function nextRunAt(cron: Cron, afterMs: number): number | null {
  return cron.nextRun(new Date(afterMs))?.getTime() ?? null;
}

export class RetentionJob {
  private readonly cron: Cron;
  private timer: NodeJS.Timeout | null = null;
  private compactTimer: NodeJS.Timeout | null = null;
  private running = false;
  private stopping = false;
  private pass: Promise<RetentionPassReport> | null = null;
  private compacting: Promise<void> | null = null;
  private wakePause: (() => void) | null = null;
  private nextAtMs: number | null = null;

  constructor(
    private readonly deps: RetentionJobDeps,
    private readonly options: RetentionJobOptions,
  ) {
    this.cron = new Cron(options.scheduler, RETENTION_CRON_OPTIONS);
  }

  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.running = true;
    this.stopping = false;
    this.nextAtMs = nextRunAt(this.cron, this.deps.clock.now());
    this.arm();
    this.compactTimer = setInterval(() => void this.compact(), this.options.compactIntervalMs);
    return Promise.resolve();
  }

  /** Resolves once the pass and compaction under way (if any) have finished their statement. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.compactTimer) clearInterval(this.compactTimer);
    this.timer = null;
    this.compactTimer = null;
    this.wakePause?.();
    await Promise.allSettled([this.pass, this.compacting]);
    this.running = false;
  }

  /**
   * Runs one pass now (the cron calls it; tests call it directly). While a pass is under way
   * this returns that pass: never two at once.
   */
  runPass(): Promise<RetentionPassReport> {
    this.pass ??= this.removeDue().finally(() => {
      this.pass = null;
    });
    return this.pass;
  }

  /** Folds the counters' deltas; failures are logged (the next interval tries again). */
  compact(): Promise<void> {
    this.compacting ??= this.deps.store
      .compactCounters()
      .then(
        () => undefined,
        (error: unknown) =>
          this.deps.logger.warn(
            { err: error },
            'retention: compacting the message counters failed',
          ),
      )
      .finally(() => {
        this.compacting = null;
      });
    return this.compacting;
  }

  private arm(): void {
    if (this.stopping || this.nextAtMs === null) return;
    const delay = Math.max(0, Math.min(MAX_TIMER_MS, this.nextAtMs - this.deps.clock.now()));
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = this.deps.clock.now();
      if (this.nextAtMs !== null && now >= this.nextAtMs) {
        this.nextAtMs = nextRunAt(this.cron, now);
        // A pass still running makes this run a no-op (runPass returns the one under way).
        void this.runPass().catch(() => undefined);
      }
      this.arm();
    }, delay);
  }

  private leases(): Map<number, number> {
    return new Map(this.deps.ownedSlots().map((lease) => [lease.slot, lease.epoch]));
  }

  private async removeDue(): Promise<RetentionPassReport> {
    const started = performance.now();
    const removed: Record<FinishedState, number> = { delivered: 0, cancelled: 0, failed: 0 };
    let archived = 0;
    let batches = 0;
    let droppedDays: number[] = [];
    const { store, metrics, logger } = this.deps;
    try {
      await this.compact();
      if (this.leases().size > 0) {
        const now = this.deps.clock.now();
        const groups = await store.finishedGroups();
        const overrides = await store.retentionOverrides();
        const targets = planRemoval(groups, overrides, this.options.periods, now);
        let archiveFromMs: number | null = null;
        if (this.options.mode === 'move') {
          const window = archiveWindow(now, this.options.archiveRetentionDays);
          droppedDays = await store.maintainArchive(window.dropBeforeDay, window.untilDay);
          archiveFromMs = window.keepFromMs;
        }
        // Slots the fence refused during this pass: another node owns them now.
        const lost = new Set<number>();
        pass: for (const target of targets) {
          for (;;) {
            const leases = this.leases();
            for (const slot of lost) leases.delete(slot);
            if (this.stopping || leases.size === 0) break pass;
            const batch = await store.removeFinished(
              { ...target, limit: this.options.batchSize, archiveFromMs },
              leases,
            );
            batches++;
            removed[target.state] += batch.removed;
            archived += batch.archived;
            metrics.retentionRemoved(target.state, batch.removed, batch.archived);
            for (const slot of batch.lostSlots) lost.add(slot);
            // Fewer picked than asked: nothing more is due in these slots. A full batch that
            // removed nothing and lost no slot (rows changed under it) would only repeat itself.
            if (batch.picked < this.options.batchSize) break;
            if (batch.removed === 0 && batch.lostSlots.length === 0) break;
            await this.pause();
          }
        }
        await this.compact();
      }
      const report = { removed, archived, droppedDays, batches };
      const ms = performance.now() - started;
      metrics.retentionPass(ms, 'ok');
      if (removed.delivered + removed.cancelled + removed.failed > 0 || droppedDays.length > 0)
        logger.info({ ...report, ms: Math.round(ms) }, 'retention pass');
      return report;
    } catch (error) {
      metrics.retentionPass(performance.now() - started, 'failed');
      logger.warn(
        { err: error, removed, archived, batches },
        'retention pass failed; the next run continues',
      );
      throw error;
    }
  }

  private pause(): Promise<void> {
    if (this.options.pauseMs <= 0 || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakePause = null;
        resolve();
      };
      const timer = setTimeout(done, this.options.pauseMs);
      this.wakePause = done;
    });
  }
}
