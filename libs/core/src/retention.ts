/**
 * Retention of finished messages (issue 14), the pure part: which finished rows are due for
 * removal, and the archive's day window. The job that runs it is libs/engine/src/retention.ts;
 * the store side is {@link RetentionStore} (libs/postgres).
 *
 * A finished message (delivered, cancelled, failed) is removed once `finished_at` is older than
 * its retention: the app's override for its state when it has one, else the configured default.
 * With `archive.mode: move` a removed row goes to the day partition of its finished day, unless
 * that day is already past the archive's own retention (it would be dropped at once): such rows
 * are only deleted.
 */

export type FinishedState = 'delivered' | 'cancelled' | 'failed';

export const FINISHED_STATES: readonly FinishedState[] = ['delivered', 'cancelled', 'failed'];

export const DAY_MS = 86_400_000;

/** How long finished messages are kept, per final state, in ms. */
export interface RetentionPeriods {
  readonly delivered: number;
  readonly cancelled: number;
  readonly failed: number;
}

/** An app's overrides (ms); null keeps the default. */
export interface AppRetention {
  readonly deliveredMs: number | null;
  readonly cancelledMs: number | null;
  readonly failedMs: number | null;
}

export const NO_RETENTION_OVERRIDES: AppRetention = Object.freeze({
  deliveredMs: null,
  cancelledMs: null,
  failedMs: null,
});

/** A change to {@link AppRetention}: absent fields stay, null goes back to the default. */
export interface AppRetentionPatch {
  readonly deliveredMs?: number | null;
  readonly cancelledMs?: number | null;
  readonly failedMs?: number | null;
}

/** An app and final state that has finished rows (from the counters). */
export interface FinishedGroup {
  readonly app: string;
  readonly state: FinishedState;
}

/** "Remove the rows of `app` in `state` finished before `beforeMs`." */
export interface RemovalTarget extends FinishedGroup {
  readonly beforeMs: number;
}

/** One batch of the retention job: at most `limit` rows of a {@link RemovalTarget}. */
export interface RemovalBatch extends RemovalTarget {
  readonly limit: number;
  /**
   * archive.mode move: rows finished at or after this instant are moved to the archive (the rest
   * are past the archive's own retention and only deleted). null: delete only.
   */
  readonly archiveFromMs: number | null;
}

/** What one removal batch did. */
export interface RemovedBatch {
  readonly removed: number;
  /** Of `removed`, moved to the archive. */
  readonly archived: number;
  /** Due rows picked in the leases' slots (at most the limit; fewer: none left there). */
  readonly picked: number;
  /** Lease slots whose epoch is no longer the lease's (another node took them): nothing of theirs was touched. */
  readonly lostSlots: readonly number[];
}

function overrideFor(retention: AppRetention | undefined, state: FinishedState): number | null {
  if (!retention) return null;
  if (state === 'delivered') return retention.deliveredMs;
  if (state === 'cancelled') return retention.cancelledMs;
  return retention.failedMs;
}

/** The retention that applies to an app's rows in `state`. */
export function retentionOf(
  state: FinishedState,
  defaults: RetentionPeriods,
  retention?: AppRetention,
): number {
  return overrideFor(retention, state) ?? defaults[state];
}

/**
 * One removal target per group, in a stable order (app, then state), cut off at `nowMs` minus
 * the group's retention. Groups whose cutoff is not positive (a retention longer than the epoch)
 * remove nothing and are left out.
 */
export function planRemoval(
  groups: readonly FinishedGroup[],
  overrides: ReadonlyMap<string, AppRetention>,
  defaults: RetentionPeriods,
  nowMs: number,
): RemovalTarget[] {
  const order = (state: FinishedState): number => FINISHED_STATES.indexOf(state);
  return [...groups]
    .sort((a, b) => (a.app < b.app ? -1 : a.app > b.app ? 1 : order(a.state) - order(b.state)))
    .map((group) => ({
      ...group,
      beforeMs: nowMs - retentionOf(group.state, defaults, overrides.get(group.app)),
    }))
    .filter((target) => target.beforeMs > 0);
}

/** The UTC day number of an instant (days since 1970-01-01). */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/**
 * The archive's days at `nowMs` with partitions kept for `retentionDays` days: partitions of
 * days before `dropBeforeDay` are dropped; rows finished before `keepFromMs` (that day's start)
 * are deleted rather than archived; partitions exist for every day from `dropBeforeDay` through
 * tomorrow (`untilDay`, inclusive), so every row the job may move has one, and a pass that runs
 * across midnight still finds its day.
 */
export interface ArchiveWindow {
  readonly dropBeforeDay: number;
  readonly keepFromMs: number;
  readonly untilDay: number;
}

export function archiveWindow(nowMs: number, retentionDays: number): ArchiveWindow {
  const today = dayOf(nowMs);
  const dropBeforeDay = today - Math.max(0, Math.floor(retentionDays));
  return { dropBeforeDay, keepFromMs: dropBeforeDay * DAY_MS, untilDay: today + 1 };
}
