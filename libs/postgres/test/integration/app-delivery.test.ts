/**
 * PgAppStore's delivery side against a real Postgres, in a database of its own: signing secrets
 * (generated lazily, race-safe; rotated with a grace period) and the admin-set delivery settings.
 * Times are chosen by the test.
 */
import assert from 'node:assert/strict';
import type { AppDeliveryConfig } from '@hourglass/core';
import { NO_DELIVERY_CONFIG, NO_QUOTAS } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { PgAppStore, PgMessageStore } from '../../src';

const T0 = 1_900_000_000_000;
const MIN = 60_000;

describe('PgAppStore: signing secrets and delivery settings', () => {
  let db: TestDatabase;
  let apps: PgAppStore;
  let peer: PgAppStore;
  let messages: PgMessageStore;
  /** The time `apps` lists live tokens and secrets at. */
  let readAt = T0;

  const createApp = async (name: string): Promise<void> => {
    const app = await apps.createApp(
      { name, description: '', topics: [], quotas: NO_QUOTAS },
      `hash-${name}`,
      T0,
    );
    assert.ok(app, `created ${name}`);
  };
  /** A generator that says how often it was asked. */
  const generator = (secret: string) => {
    const calls = { count: 0 };
    return {
      calls,
      generate: () => {
        calls.count++;
        return secret;
      },
    };
  };

  before(async () => {
    db = await createTestDatabase();
    messages = new PgMessageStore({ connectionString: db.connectionString });
    await messages.migrate(8);
    await messages.start();
    apps = new PgAppStore({ connectionString: db.connectionString, now: () => readAt });
    // A second store with a pool of its own: another node.
    peer = new PgAppStore({ connectionString: db.connectionString, now: () => T0 });
    await apps.start();
    await peer.start();
  });

  after(async () => {
    await peer?.stop();
    await apps?.stop();
    await messages?.stop();
    await db?.drop();
  });

  it('creates apps with no delivery settings and no secret', async () => {
    await createApp('plain');
    assert.deepEqual((await apps.getApp('plain'))?.delivery, NO_DELIVERY_CONFIG);
  });

  it('generates a missing secret once, and stores it: later calls do not generate', async () => {
    await createApp('lazy');
    const first = generator('whsec_first');
    assert.deepEqual(await apps.signingSecrets('lazy', T0, first.generate), ['whsec_first']);
    assert.equal(first.calls.count, 1);
    const second = generator('whsec_second');
    assert.deepEqual(await apps.signingSecrets('lazy', T0 + MIN, second.generate), ['whsec_first']);
    assert.equal(second.calls.count, 0);
    assert.equal((await apps.getApp('lazy'))?.delivery.signingSecretCreatedAtMs, T0);
  });

  it('is race-safe: nodes generating at once all end with the same stored secret', async () => {
    const names = ['race-1', 'race-2', 'race-3', 'race-4', 'race-5'];
    for (const name of names) await createApp(name);
    for (const name of names) {
      const [a, b, c] = await Promise.all([
        apps.signingSecrets(name, T0, () => `whsec_a_${name}`),
        peer.signingSecrets(name, T0, () => `whsec_b_${name}`),
        apps.signingSecrets(name, T0, () => `whsec_c_${name}`),
      ]);
      assert.equal(a?.length, 1, name);
      assert.deepEqual(b, a, name);
      assert.deepEqual(c, a, name);
      assert.deepEqual(await peer.signingSecrets(name, T0, () => 'whsec_never'), a, name);
    }
  });

  it('returns null for an unknown app, and creates nothing for it', async () => {
    const never = generator('whsec_never');
    assert.equal(await apps.signingSecrets('nobody', T0, never.generate), null);
    assert.equal(await apps.rotateSigningSecret('nobody', 'whsec_x', T0, MIN), null);
    assert.equal(await apps.getApp('nobody'), null);
  });

  it('rotates with a grace: both secrets, newest first, until the grace ends; then only the new one', async () => {
    await createApp('rotating');
    await apps.rotateSigningSecret('rotating', 'whsec_one', T0, 0);
    const rotated = await apps.rotateSigningSecret('rotating', 'whsec_two', T0 + MIN, 10 * MIN);
    assert.equal(rotated?.delivery.signingSecretCreatedAtMs, T0 + MIN);
    assert.equal(rotated?.delivery.previousSecretExpiresAtMs, T0 + 11 * MIN);
    const never = () => 'whsec_never';
    assert.deepEqual(await apps.signingSecrets('rotating', T0 + MIN, never), [
      'whsec_two',
      'whsec_one',
    ]);
    assert.deepEqual(await peer.signingSecrets('rotating', T0 + 11 * MIN - 1, never), [
      'whsec_two',
      'whsec_one',
    ]);
    assert.deepEqual(await apps.signingSecrets('rotating', T0 + 11 * MIN, never), ['whsec_two']);
    // The record says until when the previous secret is sent, and nothing once that has passed.
    readAt = T0 + 11 * MIN;
    try {
      assert.equal((await apps.getApp('rotating'))?.delivery.previousSecretExpiresAtMs, null);
    } finally {
      readAt = T0;
    }
    assert.equal(
      (await apps.getApp('rotating'))?.delivery.previousSecretExpiresAtMs,
      T0 + 11 * MIN,
    );
  });

  it('rotates without a grace: only the new secret, at once', async () => {
    await createApp('abrupt');
    await apps.rotateSigningSecret('abrupt', 'whsec_old', T0, 0);
    const rotated = await apps.rotateSigningSecret('abrupt', 'whsec_new', T0 + MIN, 0);
    assert.equal(rotated?.delivery.previousSecretExpiresAtMs, null);
    assert.deepEqual(await apps.signingSecrets('abrupt', T0 + MIN, () => 'whsec_never'), [
      'whsec_new',
    ]);
  });

  it('a second rotation during a grace keeps only the secret it replaces as the previous one', async () => {
    await createApp('twice');
    await apps.rotateSigningSecret('twice', 'whsec_1', T0, 0);
    await apps.rotateSigningSecret('twice', 'whsec_2', T0 + MIN, 10 * MIN);
    await apps.rotateSigningSecret('twice', 'whsec_3', T0 + 2 * MIN, 10 * MIN);
    assert.deepEqual(await apps.signingSecrets('twice', T0 + 2 * MIN, () => 'whsec_never'), [
      'whsec_3',
      'whsec_2',
    ]);
  });

  it('a rotation of an app that never had a secret leaves no previous one', async () => {
    await createApp('fresh');
    const rotated = await apps.rotateSigningSecret('fresh', 'whsec_only', T0, 10 * MIN);
    assert.equal(rotated?.delivery.previousSecretExpiresAtMs, null);
    assert.deepEqual(await apps.signingSecrets('fresh', T0, () => 'whsec_never'), ['whsec_only']);
  });

  it('never puts a secret into an app record (records are cached in Redis)', async () => {
    await createApp('secretive');
    await apps.rotateSigningSecret('secretive', 'whsec_hidden', T0, 0);
    await apps.rotateSigningSecret('secretive', 'whsec_hidden2', T0, MIN);
    const records = [
      await apps.getApp('secretive'),
      (await apps.findByToken('hash-secretive', T0))?.app,
      (await apps.listApps()).find((app) => app.name === 'secretive'),
    ];
    for (const record of records) {
      assert.ok(record);
      assert.ok(!JSON.stringify(record).includes('whsec_'), JSON.stringify(record));
    }
  });

  it('sets, changes and clears the delivery settings; absent fields stay', async () => {
    await createApp('shop');
    const full: AppDeliveryConfig = {
      callbackHosts: ['example.com', '*.example.com'],
      deadLetterTopic: 'shop.dead',
      alerts: { afterAttempts: 5, url: 'https://alerts.example.com/hook', topic: null },
      retry: {
        strategy: 'linear',
        initialDelayMs: 1000,
        maxDelayMs: 60_000,
        maxAttempts: 3,
        jitter: false,
      },
      signingSecretCreatedAtMs: null,
      previousSecretExpiresAtMs: null,
    };
    const set = await apps.setDeliveryConfig('shop', {
      callbackHosts: full.callbackHosts,
      deadLetterTopic: full.deadLetterTopic,
      alerts: full.alerts,
      retry: full.retry,
    });
    assert.deepEqual(set?.delivery, full);
    // Every read path carries the settings: one app, the list, a token lookup.
    assert.deepEqual((await peer.getApp('shop'))?.delivery, full);
    assert.deepEqual((await peer.listApps()).find((app) => app.name === 'shop')?.delivery, full);
    assert.deepEqual((await peer.findByToken('hash-shop', T0))?.app.delivery, full);

    const changed = await apps.setDeliveryConfig('shop', {
      alerts: { afterAttempts: 2, url: null, topic: 'shop.alerts' },
    });
    assert.deepEqual(changed?.delivery, {
      ...full,
      alerts: { afterAttempts: 2, url: null, topic: 'shop.alerts' },
    });

    const cleared = await apps.setDeliveryConfig('shop', { callbackHosts: null, retry: null });
    assert.deepEqual(cleared?.delivery, {
      ...full,
      alerts: { afterAttempts: 2, url: null, topic: 'shop.alerts' },
      callbackHosts: null,
      retry: null,
    });

    const empty = await apps.setDeliveryConfig('shop', { deadLetterTopic: null, alerts: null });
    assert.deepEqual(empty?.delivery, NO_DELIVERY_CONFIG);
    // An empty allowlist is not "no allowlist": it allows no host.
    const none = await apps.setDeliveryConfig('shop', { callbackHosts: [] });
    assert.deepEqual(none?.delivery.callbackHosts, []);
  });

  it('keeps the settings and the secret apart: one never changes the other', async () => {
    await createApp('both');
    await apps.setDeliveryConfig('both', { deadLetterTopic: 'both.dead' });
    const rotated = await apps.rotateSigningSecret('both', 'whsec_both', T0 + MIN, 0);
    assert.equal(rotated?.delivery.deadLetterTopic, 'both.dead');
    const changed = await apps.setDeliveryConfig('both', { deadLetterTopic: null });
    assert.equal(changed?.delivery.signingSecretCreatedAtMs, T0 + MIN);
    assert.deepEqual(await apps.signingSecrets('both', T0 + MIN, () => 'whsec_never'), [
      'whsec_both',
    ]);
  });

  it('answers null when setting the delivery of an unknown app', async () => {
    assert.equal(await apps.setDeliveryConfig('nobody', { deadLetterTopic: 'x' }), null);
  });
});
