/**
 * PgRetentionStore: the {@link RetentionStore} on Postgres (removal of finished messages, the
 * day-partitioned archive, compaction of the message counters). It owns a pool of ONE
 * connection, separate from the message store's: the job runs one statement at a time per node
 * by construction, and never takes a connection the firing path is waiting for.
 */
import type {
  AppRetention,
  FinishedGroup,
  RemovalBatch,
  RemovedBatch,
  RetentionStore,
} from '@hourglass/core';
import { FINISHED_STATES } from '@hourglass/core';
import type { Pool } from 'pg';
import { createPool, guarded, inTransaction } from './pool';
import { STATE_CODES } from './rows';
import { compactCounts } from './sql/counters';
import {
  maintainPartitions,
  removeFinishedBatch,
  selectFinishedGroups,
  selectRetentionOverrides,
} from './sql/retention';

export interface PgRetentionStoreOptions {
  readonly connectionString: string;
  /** A bound on each batch; a batch of 5000 takes tens of milliseconds. @default 30000 */
  readonly statementTimeoutMs?: number;
  /** @default 5000 */
  readonly connectionTimeoutMs?: number;
  /** The archive's `archived_at`. @default Date.now */
  readonly now?: () => number;
  readonly onBackgroundError?: (err: unknown) => void;
}

export class PgRetentionStore implements RetentionStore {
  private pool: Pool | null = null;
  private readonly now: () => number;

  constructor(private readonly options: PgRetentionStoreOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): Promise<void> {
    if (this.pool) return Promise.resolve();
    this.pool = createPool({
      connectionString: this.options.connectionString,
      max: 1,
      connectionTimeoutMs: this.options.connectionTimeoutMs ?? 5_000,
      statementTimeoutMs: this.options.statementTimeoutMs ?? 30_000,
      applicationName: 'hourglass-retention',
      onBackgroundError: this.options.onBackgroundError ?? (() => undefined),
    });
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }

  compactCounters(): Promise<number | null> {
    return inTransaction(this.requirePool(), (client) => compactCounts(client));
  }

  async finishedGroups(): Promise<FinishedGroup[]> {
    const pool = this.requirePool();
    const rows = await guarded(() => selectFinishedGroups(pool));
    const groups: FinishedGroup[] = [];
    for (const row of rows) {
      const state = STATE_CODES[row.state];
      const finished = FINISHED_STATES.find((s) => s === state);
      if (finished) groups.push({ app: row.app, state: finished });
    }
    return groups;
  }

  retentionOverrides(): Promise<Map<string, AppRetention>> {
    const pool = this.requirePool();
    return guarded(() => selectRetentionOverrides(pool));
  }

  removeFinished(batch: RemovalBatch, leases: ReadonlyMap<number, number>): Promise<RemovedBatch> {
    if (leases.size === 0 || batch.limit < 1)
      return Promise.resolve({ removed: 0, archived: 0, picked: 0, lostSlots: [] });
    const pool = this.requirePool();
    return guarded(() =>
      removeFinishedBatch(pool, leases, {
        app: batch.app,
        stateCode: STATE_CODES.indexOf(batch.state),
        beforeMs: batch.beforeMs,
        limit: batch.limit,
        archiveFromMs: batch.archiveFromMs,
        nowMs: this.now(),
      }),
    );
  }

  maintainArchive(fromDay: number, untilDay: number): Promise<number[]> {
    return inTransaction(this.requirePool(), (client) =>
      maintainPartitions(client, fromDay, untilDay),
    );
  }

  private requirePool(): Pool {
    if (!this.pool) throw new Error('PgRetentionStore is not started');
    return this.pool;
  }
}
