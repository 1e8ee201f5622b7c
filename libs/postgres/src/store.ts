/**
 * PgMessageStore: the {@link MessageStore} on Postgres. Owns its pool and its LISTEN connection;
 * no driver type crosses its methods. Every query lives in ./sql, with the reasoning that makes
 * it correct next to it; this class sequences them and maps rows and errors.
 */
import type {
  FilterCancelBatch,
  IdsCancelOutcome,
  MessageFilter,
  SearchPage,
  SearchPosition,
  CancelOutcome,
  ClaimRelease,
  ClaimedMessage,
  DebounceOutcome,
  DebounceSpec,
  InsertContext,
  InsertOutcome,
  LoggedAttempt,
  MessageChange,
  MessageUpdated,
  TargetSettlement,
  TargetState,
  MessageRef,
  MessageStore,
  NewMessage,
  SlotLease,
  StoredMessage,
  WheelItem,
} from '@hourglass/core';
import type { Pool } from 'pg';
import { Client } from 'pg';
import { toStoreError } from './errors';
import { createPool, guarded, inTransaction } from './pool';
import { HintListener, hintChannel } from './listener';
import { seqNumber, toClaimedMessage, toStoredMessage, toWheelItem } from './rows';
import { rearmFailedMessage, selectAttempts, settleTargetRound } from './sql/targets';
import { claimMessages, markMessagesDelivered, releaseMessageClaims } from './sql/claims';
import { selectDue } from './sql/due';
import { selectDelivering, lockEpochs, selectEpochs } from './sql/epochs';
import { deleteHintRows, selectHints } from './sql/hints';
import { insertRound } from './insert-rounds';
import { cancelMessage, selectMessage } from './sql/messages';
import { cancelIds, cancelMatching, searchMessages } from './search-store';
import { updateScheduledMessage } from './sql/update';
import { DebounceRaceError, insertDebouncedMessage } from './sql/debounce';
import { migrateInTransaction } from './sql/migrate';
import { bumpEpochs, clearOwnerRevisionsAbove, resetClaimsAndHints } from './sql/slots';

export interface PgMessageStoreOptions {
  /** Any libpq-style URL; `?options=-c%20search_path%3D<schema>` selects the schema Hourglass lives in. */
  readonly connectionString: string;
  /** @default 10 */
  readonly poolSize?: number;
  /**
   * Server-side limit on every statement of the pool. It also bounds how long an insert can stay
   * uncommitted while it holds its slots' epochs FOR SHARE, i.e. how long a takeover can wait.
   * @default 10000
   */
  readonly statementTimeoutMs?: number;
  /** How long to wait for a connection before answering "unavailable". @default 5000 */
  readonly connectionTimeoutMs?: number;
  /** Errors of background work (idle pool connections, the hint listener's reconnects). @default ignored */
  readonly onBackgroundError?: (err: unknown) => void;
}

/** A cancel that finds the row `scheduled` after losing (a claim won, then a takeover reset it) retries this often. */
const CANCEL_ATTEMPTS = 3;
/** Rounds of a debounced insert whose key holder was claimed while the insert met it. */
const DEBOUNCE_ATTEMPTS = 3;

export class PgMessageStore implements MessageStore {
  private readonly options: Required<Omit<PgMessageStoreOptions, 'onBackgroundError'>> & {
    onBackgroundError: (err: unknown) => void;
  };
  private pool: Pool | null = null;
  private listener: HintListener | null = null;
  private readonly hintListeners: ((slot: number) => void)[] = [];
  private channel: Promise<string> | null = null;

  constructor(options: PgMessageStoreOptions) {
    this.options = {
      connectionString: options.connectionString,
      poolSize: options.poolSize ?? 10,
      statementTimeoutMs: options.statementTimeoutMs ?? 10_000,
      connectionTimeoutMs: options.connectionTimeoutMs ?? 5_000,
      onBackgroundError: options.onBackgroundError ?? (() => undefined),
    };
  }

  /** Applies migrations on a connection of its own, so it works before or after {@link start}. */
  async migrate(slotCount: number): Promise<void> {
    if (!Number.isSafeInteger(slotCount) || slotCount < 1)
      throw new Error(`slot count must be a positive integer, got ${slotCount}`);
    const client = new Client({
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.options.connectionTimeoutMs,
      application_name: 'hourglass-migrate',
    });
    client.on('error', () => undefined); // surfaced through the failing query
    try {
      await client.connect();
      await client.query('BEGIN');
      try {
        await migrateInTransaction(client, slotCount);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    } catch (err) {
      throw toStoreError(err);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Creates the pool (connections open on demand) and, when hint listeners exist, the LISTEN connection. */
  start(): Promise<void> {
    if (this.pool) return Promise.resolve();
    this.pool = createPool({
      connectionString: this.options.connectionString,
      max: this.options.poolSize,
      connectionTimeoutMs: this.options.connectionTimeoutMs,
      statementTimeoutMs: this.options.statementTimeoutMs,
      applicationName: 'hourglass',
      onBackgroundError: this.options.onBackgroundError,
    });
    if (this.hintListeners.length > 0) this.startListener();
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    const listener = this.listener;
    this.pool = null;
    this.listener = null;
    this.channel = null;
    await Promise.all([listener?.stop(), pool?.end()]);
  }

  async ping(): Promise<void> {
    const pool = this.requirePool();
    await guarded(() => pool.query('SELECT 1'));
  }

  async insertBatch(
    messages: readonly NewMessage[],
    context: InsertContext,
  ): Promise<InsertOutcome[]> {
    if (messages.length === 0) return [];
    const pool = this.requirePool();
    return guarded(async () => {
      const channel = await this.hintChannel(pool);
      return insertRound(pool, messages, context, channel, 1);
    });
  }

  async get(app: string, id: string): Promise<StoredMessage | null> {
    const pool = this.requirePool();
    const row = await guarded(() => selectMessage(pool, app, id));
    return row === null ? null : toStoredMessage(row);
  }

  async cancel(app: string, id: string, nowMs: number): Promise<CancelOutcome> {
    const pool = this.requirePool();
    for (let attempt = 1; ; attempt++) {
      const row = await guarded(() => cancelMessage(pool, app, id, nowMs));
      if (row === null) return { kind: 'not_found' };
      const message = toStoredMessage(row);
      if (row.cancelled) return { kind: 'cancelled', message, seq: seqNumber(row.seq) };
      // Refused while our snapshot still showed it scheduled: a claim beat us, and a takeover may
      // since have put it back. Ask again rather than refuse a message that is cancellable.
      if (message.state === 'scheduled' && attempt < CANCEL_ATTEMPTS) continue;
      return { kind: 'refused', message };
    }
  }

  async searchMessages(
    filter: MessageFilter,
    after: SearchPosition | null,
    limit: number,
    scanLimit: number,
  ): Promise<SearchPage> {
    const pool = this.requirePool();
    return guarded(() => searchMessages(pool, filter, after, limit, scanLimit));
  }

  async cancelIds(app: string, ids: readonly string[], nowMs: number): Promise<IdsCancelOutcome> {
    const pool = this.requirePool();
    return guarded(() => cancelIds(pool, app, ids, nowMs));
  }

  async cancelMatching(
    filter: MessageFilter,
    after: SearchPosition | null,
    batchSize: number,
    scanLimit: number,
    nowMs: number,
  ): Promise<FilterCancelBatch> {
    const pool = this.requirePool();
    return guarded(() => cancelMatching(pool, filter, after, batchSize, scanLimit, nowMs));
  }

  async acquireSlots(slots: readonly number[], minEpoch: number): Promise<SlotLease[]> {
    if (slots.length === 0) return [];
    const pool = this.requirePool();
    return inTransaction(pool, async (client) => {
      const rows = await bumpEpochs(client, slots, minEpoch);
      if (rows.length !== new Set(slots).size) {
        const found = new Set(rows.map((row) => row.slot));
        throw new Error(
          `no such slots: ${slots.filter((slot) => !found.has(slot)).join(', ')} (was the store migrated?)`,
        );
      }
      const leases: SlotLease[] = [];
      for (const row of rows)
        if (row.epoch !== null) leases.push({ slot: row.slot, epoch: Number(row.epoch) });
      if (leases.length > 0)
        await resetClaimsAndHints(
          client,
          leases.map((lease) => lease.slot),
        );
      return leases.sort((a, b) => a.slot - b.slot);
    });
  }

  async forgetOwnerRevisionsAbove(revision: number): Promise<number> {
    const pool = this.requirePool();
    return guarded(() => clearOwnerRevisionsAbove(pool, revision));
  }

  async loadDue(
    slots: readonly number[],
    fromMs: number,
    untilMs: number,
    limit: number,
    after?: WheelItem,
  ): Promise<WheelItem[]> {
    if (slots.length === 0 || limit <= 0 || fromMs >= untilMs) return [];
    const pool = this.requirePool();
    const cursor = after === undefined ? undefined : { deliverAtMs: after.dueMs, seq: after.seq };
    const rows = await guarded(() => selectDue(pool, slots, fromMs, untilMs, limit, cursor));
    return rows.map(toWheelItem);
  }

  async readHints(slots: readonly number[], limit: number): Promise<WheelItem[]> {
    if (slots.length === 0 || limit <= 0) return [];
    const pool = this.requirePool();
    const rows = await guarded(() => selectHints(pool, slots, limit));
    return rows.map(toWheelItem);
  }

  async deleteHints(hints: readonly WheelItem[]): Promise<void> {
    if (hints.length === 0) return;
    const pool = this.requirePool();
    await guarded(() => deleteHintRows(pool, hints));
  }

  async currentEpochs(slots: readonly number[]): Promise<Map<number, number>> {
    if (slots.length === 0) return new Map();
    const pool = this.requirePool();
    return guarded(() => selectEpochs(pool, slots));
  }

  async withEpochLock<T>(
    leases: ReadonlyMap<number, number>,
    work: (confirmed: ReadonlySet<number>) => Promise<T>,
  ): Promise<T> {
    const pool = this.requirePool();
    // The transaction only holds the lock: work's own store calls use other connections, and
    // none of them waits for this lock (FOR SHARE does not conflict with itself).
    return inTransaction(pool, async (client) => work(await lockEpochs(client, leases)));
  }

  async findDelivering(leases: ReadonlyMap<number, number>, limit: number): Promise<MessageRef[]> {
    if (leases.size === 0 || limit <= 0) return [];
    const pool = this.requirePool();
    return guarded(() => selectDelivering(pool, leases, limit));
  }

  onHint(listener: (slot: number) => void): void {
    this.hintListeners.push(listener);
    if (this.pool && !this.listener) this.startListener();
  }

  async claim(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<ClaimedMessage[]> {
    if (refs.length === 0 || leases.size === 0) return [];
    const pool = this.requirePool();
    const rows = await guarded(() => claimMessages(pool, refs, leases, nowMs));
    return rows.map(toClaimedMessage);
  }

  async markDelivered(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<number> {
    if (refs.length === 0 || leases.size === 0) return 0;
    const pool = this.requirePool();
    return guarded(() => markMessagesDelivered(pool, refs, leases, nowMs));
  }

  async releaseClaims(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    release: ClaimRelease,
    nowMs: number,
  ): Promise<number> {
    if (refs.length === 0 || leases.size === 0) return 0;
    const pool = this.requirePool();
    return guarded(() => releaseMessageClaims(pool, refs, leases, release, nowMs));
  }

  async settleTargets(
    settlements: readonly TargetSettlement[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<number> {
    if (settlements.length === 0 || leases.size === 0) return 0;
    const pool = this.requirePool();
    return guarded(() => settleTargetRound(pool, settlements, leases, nowMs));
  }

  async listAttempts(app: string, id: string): Promise<LoggedAttempt[]> {
    const pool = this.requirePool();
    return guarded(() => selectAttempts(pool, app, id));
  }

  async rearmFailed(
    app: string,
    id: string,
    targetStates: readonly TargetState[] | null,
    nowMs: number,
    context: InsertContext,
  ): Promise<{ seq: number; slot: number; wheelable: boolean } | null> {
    const pool = this.requirePool();
    return guarded(async () => {
      const channel = await this.hintChannel(pool);
      return rearmFailedMessage(pool, app, id, targetStates, nowMs, context, channel);
    });
  }

  async updateScheduled(
    app: string,
    id: string,
    expectedVersion: number,
    change: MessageChange,
    context: InsertContext,
  ): Promise<MessageUpdated | null> {
    const pool = this.requirePool();
    return guarded(async () => {
      const channel = await this.hintChannel(pool);
      return updateScheduledMessage(pool, app, id, expectedVersion, change, context, channel);
    });
  }

  async insertDebounced(
    message: NewMessage,
    debounce: DebounceSpec,
    nowMs: number,
    context: InsertContext,
  ): Promise<DebounceOutcome> {
    const pool = this.requirePool();
    const channel = await guarded(() => this.hintChannel(pool));
    for (let attempt = 1; ; attempt++) {
      try {
        return await inTransaction(pool, (client) =>
          insertDebouncedMessage(client, message, debounce, nowMs, { ...context, channel }),
        );
      } catch (err) {
        // Each round is a new transaction; a key that keeps changing hands is a busy key.
        if (!(err instanceof DebounceRaceError) || attempt >= DEBOUNCE_ATTEMPTS) throw err;
      }
    }
  }

  /** Resolves once the hint listener is listening (or its first attempt failed). For tests. */
  async hintListenerReady(): Promise<void> {
    await this.listener?.ready();
  }

  private startListener(): void {
    const listener = new HintListener({
      connectionString: this.options.connectionString,
      onError: this.options.onBackgroundError,
      onSlot: (slot) => {
        for (const callback of this.hintListeners) callback(slot);
      },
    });
    this.listener = listener;
    listener.start();
  }

  /** The NOTIFY channel of this store's schema, resolved once per start. */
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
    if (!this.pool) throw new Error('PgMessageStore is not started');
    return this.pool;
  }
}
