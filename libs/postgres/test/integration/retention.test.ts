/**
 * Retention, the archive and the message counters in Postgres (migration 008): removal takes
 * exactly the finished rows past their retention (per state, per app override), never scheduled
 * or delivering ones, in bounded batches, fenced by the slot epoch; move mode fills the day
 * partition and drops partitions past the archive's retention. The counters: counters.test.ts.
 */
import assert from 'node:assert/strict';
import type { MessageRef, NewMessage, RemovalBatch } from '@hourglass/core';
import { DAY_MS, NO_QUOTAS, dayOf, planRemoval } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import pg from 'pg';
import { PgAppStore, PgMessageStore, PgRetentionStore } from '../../src';
import { partitionName, removeBatchStatement, removeBatchValues } from '../../src/sql/retention';

const SLOTS = 8;
const T0 = 1_900_000_000_000;
const NOW = T0 + 60 * DAY_MS;
const DEFAULTS = { delivered: 7 * DAY_MS, cancelled: 7 * DAY_MS, failed: 30 * DAY_MS };

describe('retention, archive and counters (postgres)', () => {
  let db: TestDatabase;
  let store: PgMessageStore;
  let apps: PgAppStore;
  let retention: PgRetentionStore;
  let sql: pg.Client;
  let leases: Map<number, number>;
  let counter = 0;

  before(async () => {
    db = await createTestDatabase();
    store = new PgMessageStore({ connectionString: db.connectionString });
    await store.migrate(SLOTS);
    await store.start();
    apps = new PgAppStore({ connectionString: db.connectionString });
    await apps.start();
    retention = new PgRetentionStore({ connectionString: db.connectionString, now: () => NOW });
    await retention.start();
    sql = new pg.Client({ connectionString: db.connectionString });
    await sql.connect();
    const acquired = await store.acquireSlots(
      Array.from({ length: SLOTS }, (_, slot) => slot),
      0,
    );
    leases = new Map(acquired.map((lease) => [lease.slot, lease.epoch]));
  });

  after(async () => {
    await sql?.end();
    await retention?.stop();
    await apps?.stop();
    await store?.stop();
    await db?.drop();
  });

  beforeEach(async () => {
    await sql.query('TRUNCATE messages, message_attempts');
  });

  function message(app: string, slot: number, targets = false): NewMessage {
    counter++;
    return {
      app,
      id: `m${counter}`,
      slot,
      topic: 'orders',
      key: null,
      payload: Buffer.from(`{"n":${counter}}`),
      payloadEncoding: 'json',
      headers: {},
      deliverAtMs: T0,
      fingerprint: `fp${counter}`,
      ...(targets ? { targets: [{ type: 'kafka', topic: 'orders', key: null, headers: {} }] } : {}),
    };
  }

  async function insert(
    app: string,
    slot = counter % SLOTS,
    targets = false,
  ): Promise<MessageRef & { id: string }> {
    const created = message(app, slot, targets);
    const [outcome] = await store.insertBatch([created], { ownedEpochs: leases, hintBeforeMs: 0 });
    assert.equal(outcome?.kind, 'created');
    return { seq: outcome.kind === 'created' ? outcome.seq : -1, slot, id: created.id };
  }

  /** A message of `app` that became `state` at `finishedAtMs`. */
  async function finished(
    app: string,
    state: 'delivered' | 'cancelled' | 'failed',
    finishedAtMs: number,
    slot?: number,
  ): Promise<string> {
    const ref = await insert(app, slot);
    if (state === 'cancelled') {
      assert.equal((await store.cancel(app, ref.id, finishedAtMs)).kind, 'cancelled');
      return ref.id;
    }
    assert.equal((await store.claim([ref], leases, finishedAtMs)).length, 1);
    if (state === 'delivered')
      assert.equal(await store.markDelivered([ref], leases, finishedAtMs), 1);
    else
      assert.equal(
        await store.releaseClaims(
          [ref],
          leases,
          { error: 'refused', countAttempt: true, giveUp: true },
          finishedAtMs,
        ),
        1,
      );
    return ref.id;
  }

  async function ids(): Promise<string[]> {
    const { rows } = await sql.query<{ id: string }>('SELECT id FROM messages ORDER BY id');
    return rows.map((row) => row.id).sort();
  }

  /** Runs the plan at NOW to completion, like a pass of the job, and returns the rows removed. */
  async function removeAll(limit = 5000, archiveFromMs: number | null = null): Promise<number> {
    const targets = planRemoval(
      await retention.finishedGroups(),
      await retention.retentionOverrides(),
      DEFAULTS,
      NOW,
    );
    let total = 0;
    for (const target of targets)
      for (;;) {
        const batch: RemovalBatch = { ...target, limit, archiveFromMs };
        const { removed } = await retention.removeFinished(batch, leases);
        total += removed;
        if (removed < limit) break;
      }
    return total;
  }

  async function assertCountersExact(): Promise<void> {
    const { rows } = await sql.query<{ app: string; state: number; n: string }>(
      'SELECT app, state, count(*) AS n FROM messages GROUP BY app, state',
    );
    const STATES = ['scheduled', 'delivering', 'delivered', 'cancelled', 'failed'];
    const expected = new Map<string, Record<string, number>>();
    for (const row of rows) {
      const counts = expected.get(row.app) ?? {};
      counts[STATES[row.state]!] = Number(row.n);
      expected.set(row.app, counts);
    }
    const stats = await apps.stats(NOW, []);
    assert.deepEqual(
      Object.fromEntries(stats.byApp.map((entry) => [entry.app, entry.byState])),
      Object.fromEntries(expected),
    );
  }

  it('removes exactly the finished rows past their retention, per state and per app override', async () => {
    await apps.createApp(
      { name: 'short', description: '', topics: [], quotas: NO_QUOTAS },
      'hash-short',
      T0,
    );
    await apps.setRetention('short', { deliveredMs: DAY_MS, failedMs: null });
    const due = [
      await finished('app1', 'delivered', NOW - 7 * DAY_MS - 1),
      await finished('app1', 'cancelled', NOW - 8 * DAY_MS),
      await finished('app1', 'failed', NOW - 30 * DAY_MS - 1),
      await finished('short', 'delivered', NOW - DAY_MS - 1),
    ];
    const kept = [
      // Just inside their retention.
      await finished('app1', 'delivered', NOW - 7 * DAY_MS),
      await finished('app1', 'cancelled', NOW - 7 * DAY_MS + 1),
      await finished('app1', 'failed', NOW - 29 * DAY_MS),
      await finished('short', 'delivered', NOW - DAY_MS),
      // The override is per state: failed rows of "short" keep the default.
      await finished('short', 'failed', NOW - 20 * DAY_MS),
      // Never touched, however old: scheduled and delivering rows.
      (await insert('app1')).id,
    ];
    const delivering = await insert('app1');
    assert.equal((await store.claim([delivering], leases, T0)).length, 1);
    kept.push(delivering.id);

    assert.equal(await removeAll(), due.length);
    assert.deepEqual(await ids(), [...kept].sort());
    assert.equal(await removeAll(), 0, 'a second pass finds nothing');
    await assertCountersExact();
  });

  it('takes the attempt log of removed messages with them', async () => {
    const ref = await insert('app1', 1, true);
    const keptRef = await insert('app1', 1, true);
    for (const [r, at] of [
      [ref, NOW - 10 * DAY_MS],
      [keptRef, NOW - DAY_MS],
    ] as const) {
      await sql.query(
        `INSERT INTO message_attempts (app, id, target, attempt, at, duration_ms, status)
         VALUES ('app1', $1, 0, 1, $2, 5, 200)`,
        [r.id, at],
      );
      assert.equal((await store.claim([r], leases, at)).length, 1);
      assert.equal(await store.markDelivered([r], leases, at), 1);
    }
    assert.equal(await removeAll(), 1);
    const { rows } = await sql.query<{ id: string }>('SELECT id FROM message_attempts');
    assert.deepEqual(
      rows.map((row) => row.id),
      [keptRef.id],
    );
  });

  it('removes at most `limit` rows per statement', async () => {
    for (let i = 0; i < 5; i++) await finished('app1', 'delivered', NOW - 10 * DAY_MS);
    const batch: RemovalBatch = {
      app: 'app1',
      state: 'delivered',
      beforeMs: NOW - 7 * DAY_MS,
      limit: 2,
      archiveFromMs: null,
    };
    const full = { removed: 2, archived: 0, picked: 2, lostSlots: [] };
    assert.deepEqual(await retention.removeFinished(batch, leases), full);
    assert.deepEqual(await retention.removeFinished(batch, leases), full);
    assert.deepEqual(await retention.removeFinished(batch, leases), {
      removed: 1,
      archived: 0,
      picked: 1,
      lostSlots: [],
    });
    assert.deepEqual(await ids(), []);
  });

  it('removes only rows of slots held under the current epoch', async () => {
    const inSlot2 = await finished('app1', 'delivered', NOW - 10 * DAY_MS, 2);
    const inSlot3 = await finished('app1', 'delivered', NOW - 10 * DAY_MS, 3);
    const batch: RemovalBatch = {
      app: 'app1',
      state: 'delivered',
      beforeMs: NOW - 7 * DAY_MS,
      limit: 100,
      archiveFromMs: null,
    };
    const stale = new Map([
      [2, leases.get(2)! - 1],
      [3, leases.get(3)!],
    ]);
    const fenced = await retention.removeFinished({ ...batch, app: 'app1' }, stale);
    assert.deepEqual(fenced.lostSlots, [2], 'the stale lease is named');
    assert.equal(fenced.removed, 1, 'only the row of the slot still held');
    assert.deepEqual(await ids(), [inSlot2]);
    await finished('app1', 'delivered', NOW - 10 * DAY_MS, 3);
    const onlySlot3 = new Map([[3, leases.get(3)!]]);
    assert.equal((await retention.removeFinished(batch, onlySlot3)).removed, 1);
    assert.deepEqual(await ids(), [inSlot2]);
    assert.ok(inSlot3);
  });

  it('reads only due rows through messages_retention_idx, also with a generic plan', async () => {
    // A prepared statement switches to a generic plan (parameters unknown) after a few runs; the
    // partial index must still match then. PREPARE + force_generic_plan shows that plan.
    const values = removeBatchValues(leases, {
      app: 'app1',
      stateCode: 2,
      beforeMs: NOW,
      limit: 10,
      archiveFromMs: null,
      nowMs: NOW,
    });
    const literal = (value: unknown): string =>
      value === null
        ? 'NULL'
        : Array.isArray(value)
          ? `'{${value.join(',')}}'`
          : typeof value === 'string'
            ? `'${value}'`
            : JSON.stringify(value);
    // The common shape of a large table: nearly every row finished, of one app.
    await sql.query(
      `INSERT INTO messages (app, id, slot, topic, payload, payload_encoding, deliver_at, state,
                             finished_at, fingerprint)
       SELECT 'app1', 'f' || g, g % ${SLOTS}, 'orders', '\\x7b7d', 0, $1::bigint, 2,
              $1::bigint + g, 'fp'
       FROM generate_series(1, 50000) g`,
      [T0],
    );
    await sql.query('ANALYZE messages');
    await sql.query('SET plan_cache_mode = force_generic_plan');
    try {
      await sql.query(`PREPARE remove_batch AS ${removeBatchStatement}`);
      const { rows } = await sql.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN EXECUTE remove_batch(${values.map(literal).join(', ')})`,
      );
      const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
      assert.match(plan, /Index Scan using messages_retention_idx on messages c/);
      assert.match(plan, /Tid Scan on messages m/);
      assert.doesNotMatch(plan, /Seq Scan on messages/);
    } finally {
      await sql.query('DEALLOCATE ALL');
      await sql.query('RESET plan_cache_mode');
    }
  });

  it('move mode: rows go to their day partition with their attempt log; old days are dropped', async () => {
    const today = dayOf(NOW);
    const archiveRetentionDays = 12;
    const fromDay = today - archiveRetentionDays;
    // A partition left from an earlier, longer retention: dropped by maintenance.
    assert.deepEqual(await retention.maintainArchive(fromDay - 3, today + 1), []);
    assert.deepEqual(await retention.maintainArchive(fromDay, today + 1), [
      fromDay - 3,
      fromDay - 2,
      fromDay - 1,
    ]);
    const { rows: parts } = await sql.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'messages_archive'::regclass ORDER BY 1`,
    );
    assert.equal(parts.length, archiveRetentionDays + 2);
    assert.equal(parts[0]?.name, partitionName(fromDay));

    const finishedAt = NOW - 8 * DAY_MS;
    const ref = await insert('app1', 4, true);
    await sql.query(
      `INSERT INTO message_attempts (app, id, target, attempt, at, duration_ms, status, error)
       VALUES ('app1', $1, 0, 1, $2, 7, 503, 'busy'), ('app1', $1, 0, 2, $3, 5, 200, NULL)`,
      [ref.id, finishedAt - 1000, finishedAt],
    );
    assert.equal((await store.claim([ref], leases, finishedAt)).length, 1);
    assert.equal(await store.markDelivered([ref], leases, finishedAt), 1);
    // Finished before the archive's window: deleted, not archived.
    await finished('app1', 'cancelled', fromDay * DAY_MS - 1);

    const keepFromMs = fromDay * DAY_MS;
    let archived = 0;
    for (const target of planRemoval(await retention.finishedGroups(), new Map(), DEFAULTS, NOW))
      archived += (
        await retention.removeFinished({ ...target, limit: 100, archiveFromMs: keepFromMs }, leases)
      ).archived;
    assert.equal(archived, 1);
    assert.deepEqual(await ids(), []);
    const { rows } = await sql.query<{
      part: string;
      id: string;
      state: number;
      finished_at: string;
      payload: Buffer;
      attempt_log: Array<{ attempt: number; status: number; error: string | null }>;
    }>('SELECT tableoid::regclass::text AS part, * FROM messages_archive');
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.part, partitionName(dayOf(finishedAt)));
    assert.equal(rows[0]?.id, ref.id);
    assert.equal(rows[0]?.state, 2);
    assert.equal(Number(rows[0]?.finished_at), finishedAt);
    assert.ok(rows[0]?.payload.toString().startsWith('{"n":'));
    assert.deepEqual(
      rows[0]?.attempt_log.map((a) => [a.attempt, a.status, a.error]),
      [
        [1, 503, 'busy'],
        [2, 200, null],
      ],
    );
    const { rows: attempts } = await sql.query('SELECT 1 FROM message_attempts');
    assert.equal(attempts.length, 0);

    // The day after the archive's retention, that day's partition is dropped whole.
    const laterFrom = dayOf(finishedAt) + 1;
    assert.ok(
      (await retention.maintainArchive(laterFrom, laterFrom + 20)).includes(dayOf(finishedAt)),
    );
    const { rows: left } = await sql.query('SELECT 1 FROM messages_archive');
    assert.equal(left.length, 0);
  });
});
