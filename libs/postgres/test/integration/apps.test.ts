/**
 * PgAppStore against a real Postgres, in a schema of its own. Times are chosen by the test.
 */
import assert from 'node:assert/strict';
import type { NewMessage } from '@hourglass/core';
import { NO_DELIVERY_CONFIG, NO_QUOTAS } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { PgAppStore, PgMessageStore } from '../../src';

const T0 = 1_900_000_000_000;
const MIN = 60_000;

describe('PgAppStore', () => {
  let db: TestDatabase;
  let apps: PgAppStore;
  let messages: PgMessageStore;

  before(async () => {
    db = await createTestDatabase();
    messages = new PgMessageStore({ connectionString: db.connectionString });
    await messages.migrate(8);
    await messages.start();
    apps = new PgAppStore({ connectionString: db.connectionString, now: () => T0 });
    await apps.start();
  });

  after(async () => {
    await apps?.stop();
    await messages?.stop();
    await db?.drop();
  });

  it('has a stable random cluster id', async () => {
    const id = await apps.clusterId();
    assert.match(id, /^[0-9a-f]{12}$/);
    await messages.migrate(8);
    assert.equal(await apps.clusterId(), id);
  });

  it('creates an app with topics, quotas and a token hash; a taken name gives null', async () => {
    const quotas = { ...NO_QUOTAS, ratePerSecond: 2.5, maxPending: 10 };
    const app = await apps.createApp(
      { name: 'shop', description: 'the shop', topics: ['b', 'a'], quotas },
      'hash-shop-1',
      T0,
    );
    assert.deepEqual(app, {
      name: 'shop',
      description: 'the shop',
      createdAtMs: T0,
      disabled: false,
      quotas,
      topics: ['a', 'b'],
      tokens: [{ createdAtMs: T0, expiresAtMs: null }],
      delivery: NO_DELIVERY_CONFIG,
    });
    assert.equal(
      await apps.createApp(
        { name: 'shop', description: '', topics: [], quotas: NO_QUOTAS },
        'other',
        T0,
      ),
      null,
    );
    assert.deepEqual(
      (await apps.listApps()).map((a) => a.name),
      ['shop'],
    );
  });

  it('finds apps by token hash, never by an expired token', async () => {
    const found = await apps.findByToken('hash-shop-1', T0);
    assert.equal(found?.app.name, 'shop');
    assert.equal(found?.tokenExpiresAtMs, null);
    assert.equal(await apps.findByToken('nope', T0), null);
  });

  it('rotates: old tokens expire after the grace, a second rotation never extends it', async () => {
    await apps.rotateToken('shop', 'hash-shop-2', T0 + MIN, 10 * MIN);
    assert.equal(
      (await apps.findByToken('hash-shop-1', T0 + 5 * MIN))?.tokenExpiresAtMs,
      T0 + 11 * MIN,
    );
    assert.equal(await apps.findByToken('hash-shop-1', T0 + 11 * MIN), null);
    await apps.rotateToken('shop', 'hash-shop-3', T0 + 2 * MIN, 60 * MIN);
    assert.equal(
      (await apps.findByToken('hash-shop-1', T0 + 3 * MIN))?.tokenExpiresAtMs,
      T0 + 11 * MIN,
    );
    assert.equal(
      (await apps.findByToken('hash-shop-2', T0 + 3 * MIN))?.tokenExpiresAtMs,
      T0 + 62 * MIN,
    );
    assert.equal((await apps.findByToken('hash-shop-3', T0 + 3 * MIN))?.tokenExpiresAtMs, null);
    assert.deepEqual((await apps.tokenHashes('shop')).sort(), [
      'hash-shop-1',
      'hash-shop-2',
      'hash-shop-3',
    ]);
    // A rotation with no grace ends every other token now, and drops the expired ones.
    await apps.rotateToken('shop', 'hash-shop-4', T0 + 20 * MIN, 0);
    assert.equal(await apps.findByToken('hash-shop-2', T0 + 20 * MIN), null);
    assert.deepEqual((await apps.tokenHashes('shop')).sort(), [
      'hash-shop-2',
      'hash-shop-3',
      'hash-shop-4',
    ]);
    assert.equal(await apps.rotateToken('ghost', 'h', T0, 0), null);
  });

  it('updates, disables, grants, revokes and sets quotas', async () => {
    assert.equal((await apps.updateApp('shop', { disabled: true }))?.disabled, true);
    assert.equal((await apps.findByToken('hash-shop-4', T0 + 21 * MIN))?.app.disabled, true);
    assert.equal((await apps.updateApp('shop', { description: 'new' }))?.description, 'new');
    assert.equal((await apps.getApp('shop'))?.disabled, true);
    assert.deepEqual((await apps.grantTopic('shop', 'c'))?.topics, ['a', 'b', 'c']);
    assert.deepEqual((await apps.grantTopic('shop', 'c'))?.topics, ['a', 'b', 'c']);
    assert.deepEqual((await apps.revokeTopic('shop', 'a'))?.topics, ['b', 'c']);
    assert.equal(await apps.grantTopic('ghost', 'c'), null);
    assert.deepEqual((await apps.setQuotas('shop', { ...NO_QUOTAS, maxDelayMs: 5 }))?.quotas, {
      ...NO_QUOTAS,
      maxDelayMs: 5,
    });
    assert.equal(await apps.updateApp('ghost', { disabled: true }), null);
  });

  it('bootstraps config apps: created when missing, topics granted, the config token replaced when it changes', async () => {
    await apps.ensureConfigApp({ name: 'boot', topics: ['x'] }, 'cfg-1', T0);
    await apps.rotateToken('boot', 'issued-1', T0, 60 * MIN);
    await apps.ensureConfigApp({ name: 'boot', topics: ['x', 'y'] }, 'cfg-2', T0 + 1);
    assert.deepEqual((await apps.getApp('boot'))?.topics, ['x', 'y']);
    assert.equal(await apps.findByToken('cfg-1', T0 + 2), null);
    assert.equal((await apps.findByToken('cfg-2', T0 + 2))?.app.name, 'boot');
    assert.equal((await apps.findByToken('issued-1', T0 + 2))?.app.name, 'boot');
  });

  it('counts pending messages and computes the statistics', async () => {
    let n = 0;
    const message = (app: string, deliverAtMs: number): NewMessage => ({
      app,
      id: `m${++n}`,
      slot: n % 8,
      topic: 't',
      key: null,
      payload: Buffer.from('1'),
      payloadEncoding: 'json',
      headers: {},
      deliverAtMs,
      fingerprint: `f${n}`,
    });
    const now = T0 + 30 * MIN;
    await messages.insertBatch(
      [
        message('shop', now - 1),
        message('shop', now + 30_000),
        message('shop', now + 30 * MIN),
        message('boot', now + 2 * 86_400_000),
        message('boot', now),
      ],
      { ownedEpochs: new Map(), hintBeforeMs: 0 },
    );
    const cancelled = await messages.cancel('boot', 'm5', now);
    assert.equal(cancelled.kind, 'cancelled');
    assert.equal(await apps.countPending('shop'), 3);
    assert.equal(await apps.countPending('boot'), 1);
    const stats = await apps.stats(now, [
      { label: 'overdue', untilMs: 0 },
      { label: 'within1m', untilMs: MIN },
      { label: 'within1h', untilMs: 60 * MIN },
      { label: 'later', untilMs: null },
    ]);
    assert.equal(stats.apps, 2);
    assert.equal(stats.byState.scheduled, 4);
    assert.equal(stats.byState.cancelled, 1);
    assert.deepEqual(stats.byApp, [
      { app: 'boot', byState: { scheduled: 1, cancelled: 1 } },
      { app: 'shop', byState: { scheduled: 3 } },
    ]);
    assert.deepEqual(stats.pendingByApp, [
      { app: 'boot', buckets: { overdue: 0, within1m: 0, within1h: 0, later: 1 } },
      { app: 'shop', buckets: { overdue: 1, within1m: 1, within1h: 1, later: 0 } },
    ]);
  });

  it('deletes an app with its tokens and grants, returning the hashes; its messages stay', async () => {
    const hashes = await apps.deleteApp('shop');
    assert.deepEqual(hashes?.sort(), ['hash-shop-2', 'hash-shop-3', 'hash-shop-4']);
    assert.equal(await apps.getApp('shop'), null);
    assert.equal(await apps.findByToken('hash-shop-4', T0), null);
    assert.equal(await apps.deleteApp('shop'), null);
    assert.equal(await apps.countPending('shop'), 3);
  });
});
