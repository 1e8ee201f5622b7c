/**
 * The message counters of migration 008: maintained by statement-level triggers on `messages`,
 * they always equal a `count(*) GROUP BY app, state` (through inserts, claims, deliveries,
 * failures, cancels, deletes and TRUNCATE, before and after compaction), and the admin statistics
 * read them and the pending index, never the finished rows.
 */
import assert from 'node:assert/strict';
import type { MessageRef, NewMessage } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import pg from 'pg';
import { PgAppStore, PgMessageStore, PgRetentionStore } from '../../src';
import { PENDING_BY_BUCKET } from '../../src/sql/apps';
import { SELECT_COUNTS } from '../../src/sql/counters';

const SLOTS = 8;
const T0 = 1_900_000_000_000;
const NOW = T0 + 86_400_000;
const STATES = ['scheduled', 'delivering', 'delivered', 'cancelled', 'failed'];

describe('message counters (postgres)', () => {
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
    retention = new PgRetentionStore({ connectionString: db.connectionString });
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

  function message(app: string, slot: number): NewMessage {
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
    };
  }

  async function insert(app: string, slot = counter % SLOTS): Promise<MessageRef & { id: string }> {
    const created = message(app, slot);
    const [outcome] = await store.insertBatch([created], { ownedEpochs: leases, hintBeforeMs: 0 });
    assert.equal(outcome?.kind, 'created');
    return { seq: outcome.kind === 'created' ? outcome.seq : -1, slot, id: created.id };
  }

  async function assertCountersExact(): Promise<void> {
    const { rows } = await sql.query<{ app: string; state: number; n: string }>(
      'SELECT app, state, count(*) AS n FROM messages GROUP BY app, state',
    );
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

  it('keeps the counters equal to a count of messages through every kind of change', async () => {
    await assertCountersExact();
    const refs = [];
    for (let i = 0; i < 6; i++) refs.push(await insert(i % 2 === 0 ? 'app1' : 'app2'));
    // A batch insert of several apps in one statement.
    await store.insertBatch([message('app1', 1), message('app2', 2), message('app3', 3)], {
      ownedEpochs: leases,
      hintBeforeMs: 0,
    });
    await assertCountersExact();
    assert.equal((await store.claim(refs.slice(0, 4), leases, T0)).length, 4);
    await assertCountersExact();
    assert.equal(await store.markDelivered(refs.slice(0, 2), leases, T0 + 1), 2);
    assert.equal(
      await store.releaseClaims(
        refs.slice(2, 3),
        leases,
        { error: 'x', countAttempt: true, giveUp: true },
        T0 + 1,
      ),
      1,
    );
    assert.equal(
      await store.releaseClaims(
        refs.slice(3, 4),
        leases,
        { error: 'x', countAttempt: false, giveUp: false },
        T0 + 1,
      ),
      1,
    );
    assert.equal((await store.cancel('app1', refs[4]!.id, T0 + 2)).kind, 'cancelled');
    await assertCountersExact();
    assert.notEqual(await retention.compactCounters(), null);
    await assertCountersExact();
    const { rows } = await sql.query('SELECT 1 FROM message_count_deltas');
    assert.equal(rows.length, 0, 'compaction folded every delta');
    await sql.query(`DELETE FROM messages WHERE app = 'app2'`);
    await assertCountersExact();
    await retention.compactCounters();
    await assertCountersExact();
    const { rows: app2 } = await sql.query(`SELECT 1 FROM message_counts WHERE app = 'app2'`);
    assert.equal(app2.length, 0, 'counters that reach 0 are deleted');
    await sql.query('TRUNCATE messages');
    await assertCountersExact();
  });

  it('a compaction that finds another under way does nothing', async () => {
    await insert('app1');
    const holder = new pg.Client({ connectionString: db.connectionString });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(
        'SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))',
        [0x48474c43],
      );
      assert.equal(await retention.compactCounters(), null);
      await holder.query('COMMIT');
      assert.equal(await retention.compactCounters(), 1);
    } finally {
      await holder.end();
    }
  });
  it('admin stats read counters and the pending index only, never the finished rows', async () => {
    await sql.query(
      `INSERT INTO messages (app, id, slot, topic, payload, payload_encoding, deliver_at, state,
                             finished_at, fingerprint)
       SELECT 'app1', 'f' || g, g % ${SLOTS}, 'orders', '\\x7b7d', 0, $1::bigint, 2,
              $1::bigint + g, 'fp'
       FROM generate_series(1, 50000) g`,
      [T0],
    );
    for (let i = 0; i < 5; i++) await insert('app1');
    await sql.query('ANALYZE messages');
    const plan = async (text: string, values: unknown[] = []): Promise<string> =>
      (await sql.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, values)).rows
        .map((row) => row['QUERY PLAN'])
        .join('\n');
    const counts = await plan(SELECT_COUNTS);
    assert.doesNotMatch(counts, / on messages /);
    const pending = await plan(PENDING_BY_BUCKET, [[NOW, NOW + 60_000]]);
    assert.match(pending, /Index Only Scan using messages_app_pending_idx on messages m/);
    assert.doesNotMatch(pending, /Seq Scan on messages/);
    const stats = await apps.stats(NOW, []);
    assert.deepEqual(stats.byState, {
      scheduled: 5,
      delivering: 0,
      delivered: 50_000,
      cancelled: 0,
      failed: 0,
    });
  });
});
