/**
 * The retention job against the real services (issue 14):
 * - only a slot's owner removes its rows: two jobs over one database, each with the slots (and
 *   epochs) its own store acquired; a slot taken over mid-way is left to its new owner;
 * - on a node: a message delivered through Kafka is removed after a short retention by the job's
 *   cron, the stats and metrics say so, and its id can be used again.
 */
import assert from 'node:assert/strict';
import type { MessageRef, SlotLease } from '@hourglass/core';
import { DAY_MS, silentLogger } from '@hourglass/core';
import { EngineMetrics, RetentionJob } from '@hourglass/engine';
import type { RetentionJobOptions } from '@hourglass/engine';
import { PgMessageStore, PgRetentionStore } from '@hourglass/postgres';
import {
  createTestDatabase,
  createTopics,
  pollUntil,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import pg from 'pg';
import type { RunningNode } from '../../src/node';
import { api, startInProcess, testConfig } from '../support/harness';

const SLOTS = 8;
const T0 = 1_900_000_000_000;
const NOW = T0 + 30 * DAY_MS;
const JOB: RetentionJobOptions = {
  // Passes are run by hand in the first test; the cron never comes due within it.
  scheduler: '0 0 1 1 *',
  mode: 'delete',
  periods: { delivered: 7 * DAY_MS, cancelled: 7 * DAY_MS, failed: 30 * DAY_MS },
  archiveRetentionDays: 30,
  batchSize: 3,
  pauseMs: 1,
  compactIntervalMs: 60_000,
};

describe('retention job (postgres, two owners)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const stores: PgMessageStore[] = [];
  const retentionStores: PgRetentionStore[] = [];
  const jobs: RetentionJob[] = [];
  let sql: pg.Client;

  before(async () => {
    db = await createTestDatabase();
    sql = new pg.Client({ connectionString: db.connectionString });
    await sql.connect();
  });

  after(async () => {
    await Promise.all(jobs.map((job) => job.stop()));
    await Promise.all(retentionStores.map((store) => store.stop()));
    await Promise.all(stores.map((store) => store.stop()));
    await sql?.end();
    await db?.drop();
  });

  /** A node's view: its message store, the leases it holds, and its retention job. */
  async function owner(
    slots: number[],
    options: RetentionJobOptions = JOB,
  ): Promise<{
    store: PgMessageStore;
    leases: Map<number, number>;
    job: RetentionJob;
    metrics: EngineMetrics;
  }> {
    const store = new PgMessageStore({ connectionString: db.connectionString });
    await store.migrate(SLOTS);
    await store.start();
    stores.push(store);
    const leases = new Map<number, number>();
    for (const lease of await store.acquireSlots(slots, 0)) leases.set(lease.slot, lease.epoch);
    const retentionStore = new PgRetentionStore({ connectionString: db.connectionString });
    await retentionStore.start();
    retentionStores.push(retentionStore);
    const metrics = new EngineMetrics();
    const job = new RetentionJob(
      {
        store: retentionStore,
        ownedSlots: (): SlotLease[] => [...leases].map(([slot, epoch]) => ({ slot, epoch })),
        clock: { now: () => NOW },
        logger: silentLogger,
        metrics,
      },
      options,
    );
    jobs.push(job);
    return { store, leases, job, metrics };
  }

  let counter = 0;
  async function delivered(
    store: PgMessageStore,
    leases: Map<number, number>,
    slot: number,
    atMs: number,
  ): Promise<string> {
    counter++;
    const id = `m${counter}`;
    const [outcome] = await store.insertBatch(
      [
        {
          app: 'shop',
          id,
          slot,
          topic: 'orders',
          key: null,
          payload: Buffer.from('{}'),
          payloadEncoding: 'json',
          headers: {},
          deliverAtMs: T0,
          fingerprint: `fp${counter}`,
        },
      ],
      { ownedEpochs: leases, hintBeforeMs: 0 },
    );
    assert.equal(outcome?.kind, 'created');
    const ref: MessageRef = { seq: outcome.kind === 'created' ? outcome.seq : -1, slot };
    assert.equal((await store.claim([ref], leases, atMs)).length, 1);
    assert.equal(await store.markDelivered([ref], leases, atMs), 1);
    return id;
  }

  async function slotsLeft(): Promise<Map<number, number>> {
    const { rows } = await sql.query<{ slot: number; n: string }>(
      'SELECT slot, count(*) AS n FROM messages GROUP BY slot ORDER BY slot',
    );
    return new Map(rows.map((row) => [row.slot, Number(row.n)]));
  }

  it('removes only the rows of the slots each job owns, fenced by the epoch', async () => {
    const a = await owner([0, 1, 2, 3]);
    const b = await owner([4, 5, 6, 7]);
    const old = NOW - 10 * DAY_MS;
    // Four due rows per slot (more than one batch of 3), and one recent row that stays.
    for (let slot = 0; slot < SLOTS; slot++) {
      const side = slot < 4 ? a : b;
      for (let i = 0; i < 4; i++) await delivered(side.store, side.leases, slot, old);
      await delivered(side.store, side.leases, slot, NOW - DAY_MS);
    }

    const report = await a.job.runPass();
    assert.equal(report.removed.delivered, 16);
    assert.ok(
      report.batches >= 6,
      `16 rows in batches of 3 take 6 statements, ran ${report.batches}`,
    );
    assert.deepEqual(
      [...(await slotsLeft())],
      [
        [0, 1],
        [1, 1],
        [2, 1],
        [3, 1],
        [4, 5],
        [5, 5],
        [6, 5],
        [7, 5],
      ],
    );
    const removedMetric = await a.metrics.registry.getSingleMetricAsString(
      'hourglass_retention_removed_total',
    );
    assert.match(removedMetric, /hourglass_retention_removed_total\{state="delivered"\} 16/);

    // a takes slot 4 over from b, which still believes it owns it with its old epoch.
    const [taken] = await a.store.acquireSlots([4], 0);
    assert.ok(taken);
    a.leases.set(4, taken.epoch);
    const bReport = await b.job.runPass();
    assert.equal(bReport.removed.delivered, 12, 'b removes slots 5-7, not slot 4 it lost');
    assert.equal((await slotsLeft()).get(4), 5);
    assert.equal((await a.job.runPass()).removed.delivered, 4);
    assert.deepEqual([...(await slotsLeft()).values()], [1, 1, 1, 1, 1, 1, 1, 1]);
  });

  it('move mode: the job archives the rows it removes into their day partition', async () => {
    await sql.query('TRUNCATE messages');
    const mover = await owner([0, 1, 2, 3, 4, 5, 6, 7], { ...JOB, mode: 'move', batchSize: 100 });
    const finishedAt = NOW - 10 * DAY_MS;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await delivered(mover.store, mover.leases, i, finishedAt));
    const report = await mover.job.runPass();
    assert.equal(report.removed.delivered, 5);
    assert.equal(report.archived, 5);
    const { rows } = await sql.query<{ id: string; part: string }>(
      'SELECT id, tableoid::regclass::text AS part FROM messages_archive ORDER BY id',
    );
    const day = new Date(Math.floor(finishedAt / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
    assert.deepEqual(
      rows.map((row) => row.id),
      [...ids].sort(),
    );
    assert.ok(rows.every((row) => row.part === `messages_archive_${day.replace(/-/g, '_')}`));
    const archivedMetric = await mover.metrics.registry.getSingleMetricAsString(
      'hourglass_archived_total',
    );
    assert.match(archivedMetric, /hourglass_archived_total 5/);
  });
});

describe('retention on a node (cron, Kafka, stats, id reuse)', () => {
  const urls = serviceUrls();
  const TOKEN = 'retention-token-01';
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let node: RunningNode;
  let topic: string;

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('retention');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        cluster: { slots: 16 },
        apps: [{ name: 'shop', token: TOKEN, topics: [topic] }],
        // Delivered messages are kept half a second; the job runs every second.
        retention: { deliveredDays: 0.5 / 86_400 },
        archive: { scheduler: '* * * * * *', compactIntervalMs: 200 },
      }),
    );
  });

  after(async () => {
    await node?.stop();
    await db?.drop();
  });

  it('removes a delivered message after its retention; its id can then be used again', async () => {
    const id = `reuse-${Date.now()}`;
    const body = { id, topic, payload: { n: 1 }, delayMs: 0 };
    const first = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, body);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const deliveredView = await pollUntil(
      () => api(node.httpUrl, 'GET', `/v1/messages/${id}`, TOKEN),
      (response) => response.body.state === 'delivered',
    );
    assert.equal(deliveredView.body.state, 'delivered');
    const gone = await pollUntil(
      () => api(node.httpUrl, 'GET', `/v1/messages/${id}`, TOKEN),
      (response) => response.status === 404,
    );
    assert.equal(gone.status, 404, 'removed after its retention');

    const stats = await api<{ byApp: Array<{ app: string; byState: Record<string, number> }> }>(
      node.httpUrl,
      'GET',
      '/v1/admin/stats',
      'admin-token',
    );
    assert.equal(stats.status, 200);
    assert.equal(stats.body.byApp.find((entry) => entry.app === 'shop')?.byState.delivered ?? 0, 0);
    const metrics = await api<string>(node.httpUrl, 'GET', '/metrics', null);
    assert.match(metrics.body, /hourglass_retention_removed_total\{state="delivered"\} [1-9]/);

    // The same id and content again: a new message, not a re-send of the removed one.
    const again = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, body);
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.equal(again.body.state, 'scheduled');
  });

  it('sets, shows and clears an app retention override through the admin API', async () => {
    const set = await api<{ retention: Record<string, number | null> }>(
      node.httpUrl,
      'PATCH',
      '/v1/admin/apps/shop',
      'admin-token',
      { retention: { failedDays: 2, cancelledDays: 0.25 } },
    );
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.retention, {
      deliveredDays: null,
      cancelledDays: 0.25,
      failedDays: 2,
    });
    const shown = await api<{ retention: unknown; description: string }>(
      node.httpUrl,
      'GET',
      '/v1/admin/apps/shop',
      'admin-token',
    );
    assert.deepEqual(shown.body.retention, set.body.retention);
    const bad = await api<{ error: { code: string; details?: Array<{ path: string }> } }>(
      node.httpUrl,
      'PATCH',
      '/v1/admin/apps/shop',
      'admin-token',
      { retention: { deliveredDays: -1 } },
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
    assert.ok(
      JSON.stringify(bad.body.error).includes('deliveredDays'),
      JSON.stringify(bad.body.error),
    );
    const cleared = await api<{ retention: unknown }>(
      node.httpUrl,
      'PATCH',
      '/v1/admin/apps/shop',
      'admin-token',
      { retention: { failedDays: null, cancelledDays: null } },
    );
    assert.deepEqual(cleared.body.retention, {
      deliveredDays: null,
      cancelledDays: null,
      failedDays: null,
    });
  });
});
