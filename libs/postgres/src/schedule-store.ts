/**
 * PgScheduleStore: the {@link ScheduleStore} on Postgres, beside PgMessageStore on the same
 * schema. Owns its pool; no driver type crosses its methods. The statements live in
 * ./sql/schedules.ts; occurrences are inserted with the message insert itself (./sql/insert.ts),
 * so an occurrence is a message like any other: same columns, same hints for its slot's owner.
 */
import type {
  CreateScheduleOutcome,
  DueSchedule,
  MaterialisationStep,
  MaterialiseOutcome,
  NewSchedule,
  ScheduleChangeOutcome,
  ScheduleRevision,
  ScheduleStore,
  SlotLease,
  StoredSchedule,
} from '@hourglass/core';
import type { Pool, PoolClient, QueryConfig } from 'pg';
import { createPool, guarded, inTransaction } from './pool';
import { hintChannel } from './listener';
import type { Queryable } from './sql/db';
import { insertMessages, selectMessages } from './sql/insert';
import {
  advanceSchedule,
  cancelRevisionOccurrences,
  deleteScheduleRow,
  insertSchedule,
  lockScheduleFence,
  selectDueSchedules,
  selectSchedule,
  selectSchedules,
  toStoredSchedule,
  updateScheduleRevision,
} from './sql/schedules';

export interface PgScheduleStoreOptions {
  readonly connectionString: string;
  /** @default 4 */
  readonly poolSize?: number;
  /** @default 10000 */
  readonly statementTimeoutMs?: number;
  /** @default 5000 */
  readonly connectionTimeoutMs?: number;
  readonly onBackgroundError?: (err: unknown) => void;
}

/**
 * The message insert inside a transaction: it answers a duplicate id by failing its first form
 * and sending the ON CONFLICT form (see insertMessages). A failed statement aborts a
 * transaction, so each statement runs under a savepoint that is rolled back when it fails.
 */
function underSavepoints(client: PoolClient): Queryable {
  const run = async (query: () => Promise<unknown>): Promise<unknown> => {
    await client.query('SAVEPOINT hourglass_occurrences');
    try {
      const result = await query();
      await client.query('RELEASE SAVEPOINT hourglass_occurrences');
      return result;
    } catch (error) {
      await client.query('ROLLBACK TO SAVEPOINT hourglass_occurrences');
      throw error;
    }
  };
  return {
    query: (textOrConfig: string | QueryConfig, values?: unknown[]) =>
      run(() =>
        typeof textOrConfig === 'string'
          ? client.query(textOrConfig, values)
          : client.query(textOrConfig),
      ),
  } as Queryable;
}

export class PgScheduleStore implements ScheduleStore {
  private pool: Pool | null = null;
  private channel: Promise<string> | null = null;

  constructor(private readonly options: PgScheduleStoreOptions) {}

  start(): Promise<void> {
    this.pool ??= createPool({
      connectionString: this.options.connectionString,
      max: this.options.poolSize ?? 4,
      connectionTimeoutMs: this.options.connectionTimeoutMs ?? 5_000,
      statementTimeoutMs: this.options.statementTimeoutMs ?? 10_000,
      applicationName: 'hourglass-schedules',
      onBackgroundError: this.options.onBackgroundError ?? (() => undefined),
    });
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.channel = null;
    await pool?.end();
  }

  async createSchedule(
    schedule: NewSchedule,
    maxPerApp: number,
    nowMs: number,
  ): Promise<CreateScheduleOutcome> {
    const pool = this.requirePool();
    const { inserted, count } = await inTransaction(pool, async (client) => {
      const existing = await selectSchedule(client, schedule.app, schedule.id);
      if (existing) return { inserted: null, count: -1 };
      return insertSchedule(client, schedule, maxPerApp, nowMs);
    });
    if (inserted) return { kind: 'created', schedule: toStoredSchedule(inserted) };
    const current = await this.getSchedule(schedule.app, schedule.id);
    if (current)
      return {
        kind: current.fingerprint === schedule.fingerprint ? 'existing' : 'conflict',
        schedule: current,
      };
    return { kind: 'quota_exceeded', count };
  }

  async getSchedule(app: string, id: string): Promise<StoredSchedule | null> {
    const pool = this.requirePool();
    const row = await guarded(() => selectSchedule(pool, app, id));
    return row ? toStoredSchedule(row) : null;
  }

  async listSchedules(
    app: string,
    afterId: string | null,
    limit: number,
  ): Promise<StoredSchedule[]> {
    const pool = this.requirePool();
    return (await guarded(() => selectSchedules(pool, app, afterId, limit))).map(toStoredSchedule);
  }

  async reviseSchedule(
    app: string,
    id: string,
    decide: (current: StoredSchedule) => ScheduleRevision | null,
    nowMs: number,
  ): Promise<ScheduleChangeOutcome | null> {
    const pool = this.requirePool();
    return inTransaction(pool, async (client) => {
      const row = await selectSchedule(client, app, id, true);
      if (!row) return null;
      const current = toStoredSchedule(row);
      const change = decide(current);
      if (!change) return { schedule: current, cancelledOccurrences: 0 };
      const { cancelled, uncancelledDueMs } = await cancelRevisionOccurrences(
        client,
        app,
        id,
        current.revision,
        nowMs,
      );
      const updated = await updateScheduleRevision(
        client,
        app,
        id,
        { ...change, nextAtMs: change.state === 'ended' ? null : change.nextAt(uncancelledDueMs) },
        nowMs,
      );
      const schedule = toStoredSchedule(updated);
      if (schedule.state === 'active' && schedule.nextAtMs === null) {
        // No occurrence left under the new timing.
        await client.query(`UPDATE schedules SET state = 'ended' WHERE app = $1 AND id = $2`, [
          app,
          id,
        ]);
        return { schedule: { ...schedule, state: 'ended' }, cancelledOccurrences: cancelled };
      }
      return { schedule, cancelledOccurrences: cancelled };
    });
  }

  async deleteSchedule(
    app: string,
    id: string,
    nowMs: number,
  ): Promise<{ cancelledOccurrences: number } | null> {
    const pool = this.requirePool();
    return inTransaction(pool, async (client) => {
      const row = await selectSchedule(client, app, id, true);
      if (!row) return null;
      const { cancelled } = await cancelRevisionOccurrences(client, app, id, row.revision, nowMs);
      await deleteScheduleRow(client, app, id);
      return { cancelledOccurrences: cancelled };
    });
  }

  async dueSchedules(
    slots: readonly number[],
    beforeMs: number,
    limit: number,
  ): Promise<DueSchedule[]> {
    if (slots.length === 0 || limit <= 0) return [];
    const pool = this.requirePool();
    const rows = await guarded(() => selectDueSchedules(pool, slots, beforeMs, limit));
    return rows.map((row) => ({
      app: row.app,
      id: row.id,
      slot: row.slot,
      nextAtMs: Number(row.next_at),
    }));
  }

  async materialise(
    lease: SlotLease,
    app: string,
    id: string,
    plan: (schedule: StoredSchedule) => MaterialisationStep | null,
    hintBeforeMs: number,
    nowMs: number,
  ): Promise<MaterialiseOutcome> {
    const pool = this.requirePool();
    const channel = await guarded(() => this.hintChannel(pool));
    return inTransaction(pool, async (client): Promise<MaterialiseOutcome> => {
      // The row lock first: a PATCH or DELETE of the schedule waits for this step, or this step
      // plans from its result.
      const row = await selectSchedule(client, app, id, true);
      if (!row || row.slot !== lease.slot) return { kind: 'skipped' };
      const step = plan(toStoredSchedule(row));
      if (!step) return { kind: 'skipped' };
      const slots = step.messages.map((message) => message.slot);
      if (!(await lockScheduleFence(client, lease.slot, lease.epoch, slots)))
        return { kind: 'fenced' };
      let created = 0;
      let existing = 0;
      let conflicts = 0;
      if (step.messages.length > 0) {
        // No owned epochs: every near-due occurrence gets a wheel hint, and its slot's owner
        // (this node too) wheels it from there.
        const inserted = await insertMessages(
          underSavepoints(client),
          step.messages,
          new Map(),
          hintBeforeMs,
          channel,
        );
        const taken = step.messages.filter((_, index) => inserted.seqs[index] === null);
        created = step.messages.length - taken.length;
        if (taken.length > 0) {
          const fingerprints = new Map(taken.map((message) => [message.id, message.fingerprint]));
          for (const found of await selectMessages(client, taken)) {
            if (fingerprints.get(found.id) === found.fingerprint) existing++;
            else conflicts++;
          }
        }
      }
      await advanceSchedule(client, app, id, step, nowMs);
      return { kind: 'materialised', created, existing, conflicts };
    });
  }

  /** The NOTIFY channel of this store's schema (the message store's, see ./listener.ts). */
  private hintChannel(pool: Pool): Promise<string> {
    this.channel ??= pool
      .query<{ schema: string | null }>('SELECT current_schema() AS schema')
      .then((result) => {
        const schema = result.rows[0]?.schema;
        if (!schema) throw new Error('no current schema: the search_path names no existing schema');
        return hintChannel(schema);
      })
      .catch((err: unknown) => {
        this.channel = null;
        throw err;
      });
    return this.channel;
  }

  private requirePool(): Pool {
    if (!this.pool) throw new Error('PgScheduleStore is not started');
    return this.pool;
  }
}
