/**
 * The materialiser against the real Postgres with an injected clock (issue 14): the DST rules end
 * to end (spring gap skipped, autumn fold fired once), the slot fence (a node that lost the slot
 * writes nothing), the misfire rules after an outage, and idempotent re-materialisation.
 */
import assert from 'node:assert/strict';
import type { SlotLease } from '@hourglass/core';
import { ScheduleMaterializer, ScheduleMetrics, ScheduleService } from '@hourglass/engine';
import { PgMessageStore, PgScheduleStore } from '@hourglass/postgres';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { Client } from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';

const SLOTS = 4;
const APP = { name: 'clocked', topics: new Set(['ticks']) };
const message = { topic: 'ticks', payload: { tick: true } };
const at = (iso: string): number => Date.parse(iso);

describe('schedule materialiser with an injected clock', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let messages: PgMessageStore;
  let store: PgScheduleStore;
  let sql: Client;
  let leases: SlotLease[];
  let nowMs = at('2026-03-27T12:00:00Z');
  const clock = { now: () => nowMs };
  const registry = new Registry();
  let materializer: ScheduleMaterializer;
  let service: ScheduleService;

  /** Occurrence times (from the ids) of a schedule's messages, in ISO form, by state. */
  async function occurrences(id: string, state = 0): Promise<string[]> {
    const result = await sql.query<{ id: string }>(
      `SELECT id FROM messages WHERE app = $1 AND id LIKE $2 AND state = $3 ORDER BY deliver_at`,
      [APP.name, `${id}:%`, state],
    );
    return result.rows.map((row) => new Date(Number(row.id.split(':')[2])).toISOString());
  }

  async function metric(name: string): Promise<number> {
    const values = (await registry.getMetricsAsJSON()).find((m) => m.name === name)?.values ?? [];
    return values.reduce((sum, value) => sum + value.value, 0);
  }

  before(async () => {
    db = await createTestDatabase();
    messages = new PgMessageStore({ connectionString: db.connectionString });
    await messages.migrate(SLOTS);
    await messages.start();
    store = new PgScheduleStore({ connectionString: db.connectionString });
    await store.start();
    sql = new Client({ connectionString: db.connectionString });
    await sql.connect();
    leases = await messages.acquireSlots([0, 1, 2, 3], 0);
    materializer = new ScheduleMaterializer(
      {
        store,
        slots: { ownedSlots: () => leases },
        clock,
        logger: pino({ level: 'silent' }),
        metrics: new ScheduleMetrics(registry),
      },
      { slotCount: SLOTS, horizonMs: 4 * 86_400_000, passIntervalMs: 1000, misfireGraceMs: 60_000 },
    );
    service = new ScheduleService(
      { store, clock, slots: { ownedSlots: () => leases } },
      {
        slotCount: SLOTS,
        limits: { maxPayloadBytes: 1024, maxDelayMs: 86_400_000 * 365, maxBatchSize: 10 },
        maxSchedulesPerApp: 100,
      },
    );
  });

  after(async () => {
    await sql?.end();
    await store?.stop();
    await messages?.stop();
    await db?.drop();
  });

  it('skips 02:30 on the day it does not exist in Europe/Berlin (2026-03-29)', async () => {
    nowMs = at('2026-03-27T12:00:00Z');
    await service.create(APP, {
      id: 'gap',
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
      message,
    });
    await materializer.pass();
    assert.deepEqual(await occurrences('gap'), [
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-30T00:30:00.000Z', // 02:30 CEST; nothing on the 29th (croner alone: 03:00, 01:00Z)
      '2026-03-31T00:30:00.000Z',
    ]);
    const view = await service.get(APP, 'gap');
    assert.equal(view.occurrences, 3);
    assert.equal(view.lastOccurrenceId, `gap:1:${at('2026-03-31T00:30:00Z')}`);
  });

  it('fires the repeated 02:00 and 02:30 of 2026-10-25 once each in Europe/Berlin', async () => {
    nowMs = at('2026-10-24T22:00:00Z');
    await service.create(APP, {
      id: 'fold',
      cron: '*/30 * * * *',
      timezone: 'Europe/Berlin',
      endAt: '2026-10-25T03:00:00Z',
      message,
    });
    await materializer.pass();
    assert.deepEqual(await occurrences('fold'), [
      '2026-10-24T22:00:00.000Z', // 00:00 CEST
      '2026-10-24T22:30:00.000Z',
      '2026-10-24T23:00:00.000Z',
      '2026-10-24T23:30:00.000Z',
      '2026-10-25T00:00:00.000Z', // 02:00 CEST
      '2026-10-25T00:30:00.000Z', // 02:30 CEST; 02:00 and 02:30 CET (01:00Z, 01:30Z) are repeats
      '2026-10-25T02:00:00.000Z', // 03:00 CET
      '2026-10-25T02:30:00.000Z',
    ]);
    assert.equal((await service.get(APP, 'fold')).state, 'ended', 'ended by endAt');
  });

  it('writes nothing under a lease whose epoch another node has raised', async () => {
    nowMs = at('2026-06-01T00:00:00Z');
    const stale = leases;
    // Another node takes every slot over (the epochs go up); this node still holds the old leases.
    const taken = await messages.acquireSlots([0, 1, 2, 3], 0);
    await service.create(APP, { id: 'fenced', every: '1h', message });
    const fencedBefore = await metric('hourglass_schedule_steps_fenced_total');
    await materializer.pass();
    assert.deepEqual(await occurrences('fenced'), []);
    assert.equal((await service.get(APP, 'fenced')).occurrences, 0);
    assert.equal(await metric('hourglass_schedule_steps_fenced_total'), fencedBefore + 1);
    assert.notDeepEqual(stale, taken);
    leases = taken;
    await materializer.pass();
    assert.equal((await occurrences('fenced')).length, 96, 'four days of hours');
  });

  it('re-materialising the same occurrences creates nothing twice', async () => {
    const before = await occurrences('fenced');
    // As if the cursor had never advanced: the step inserts the same ids, which exist already.
    await sql.query(`UPDATE schedules SET next_at = $1, occurrences = 0 WHERE id = 'fenced'`, [
      at('2026-06-01T01:00:00Z'),
    ]);
    await materializer.pass();
    assert.deepEqual(await occurrences('fenced'), before);
  });

  it('after an outage: misfire once fires the latest missed occurrence, skip none, all up to the cap', async () => {
    nowMs = at('2026-07-01T00:00:00Z');
    // The earlier tests' schedules would be late too: only this test's count.
    for (const id of ['gap', 'fenced']) await service.delete(APP, id);
    const small = (id: string, extra: object) =>
      service.create(APP, { id, every: '1m', startAt: '2026-07-01T00:01:00Z', message, ...extra });
    await small('once', { misfire: 'once', endAt: '2026-07-01T04:00:00Z' });
    await small('skip', { misfire: 'skip', endAt: '2026-07-01T04:00:00Z' });
    await small('all', { misfire: 'all', misfireLimit: 5, endAt: '2026-07-01T04:00:00Z' });
    const lateBefore = await metric('hourglass_schedules_found_late_total');
    // Nothing materialised them in time: the cluster was down until 02:00, when a horizon of
    // 4 days would have covered them all. Simulate a horizon that had reached 00:30 only.
    await sql.query(
      `DELETE FROM messages WHERE id LIKE 'once:%' OR id LIKE 'skip:%' OR id LIKE 'all:%'`,
    );
    await sql.query(
      `UPDATE schedules SET next_at = $1, occurrences = 0 WHERE id IN ('once', 'skip', 'all')`,
      [at('2026-07-01T00:01:00Z')],
    );
    nowMs = at('2026-07-01T02:00:00Z');
    await materializer.pass();
    const regular = 120 + 1; // 01:59 (within the minute of grace) to 03:59
    assert.equal((await occurrences('skip')).length, regular);
    assert.deepEqual((await occurrences('once')).slice(0, 2), [
      '2026-07-01T01:58:00.000Z', // the latest missed one (older than the grace)
      '2026-07-01T01:59:00.000Z',
    ]);
    assert.equal((await occurrences('once')).length, regular + 1);
    assert.deepEqual((await occurrences('all')).slice(0, 6), [
      '2026-07-01T01:54:00.000Z',
      '2026-07-01T01:55:00.000Z',
      '2026-07-01T01:56:00.000Z',
      '2026-07-01T01:57:00.000Z',
      '2026-07-01T01:58:00.000Z',
      '2026-07-01T01:59:00.000Z',
    ]);
    assert.equal(await metric('hourglass_schedules_found_late_total'), lateBefore + 3);
  });
});
