/**
 * CachedAppDelivery: one read of the app store per app and TTL, generation of a missing secret,
 * and the last copy kept while the store cannot be read.
 */
import assert from 'node:assert/strict';
import type { AppRecord, AppStore } from '@hourglass/core';
import { NO_DELIVERY_CONFIG, NO_QUOTAS } from '@hourglass/core';
import { CachedAppDelivery } from '../../src';

function storeWith(secrets: string[]): {
  store: AppStore;
  reads: () => number;
  fail: (on: boolean) => void;
} {
  let reads = 0;
  let failing = false;
  const app: AppRecord = {
    name: 'shop',
    description: '',
    createdAtMs: 0,
    disabled: false,
    quotas: NO_QUOTAS,
    topics: [],
    tokens: [],
    delivery: { ...NO_DELIVERY_CONFIG, deadLetterTopic: 'shop.dead' },
  };
  const store = {
    signingSecrets: (_name: string, _now: number, generate: () => string) => {
      reads++;
      if (failing) return Promise.reject(new Error('postgres is unavailable'));
      if (secrets.length === 0) secrets.push(generate());
      return Promise.resolve([...secrets]);
    },
    getApp: () =>
      failing ? Promise.reject(new Error('postgres is unavailable')) : Promise.resolve(app),
  } as unknown as AppStore;
  return { store, reads: () => reads, fail: (on) => (failing = on) };
}

describe('CachedAppDelivery', () => {
  it('reads once per TTL, generates a missing secret, and keeps the last copy while the store is out', async () => {
    let now = 1_000;
    const { store, reads, fail } = storeWith([]);
    const cache = new CachedAppDelivery(store, { now: () => now }, 5_000);
    const [secret] = await cache.signingSecrets('shop');
    assert.match(secret ?? '', /^whsec_/);
    assert.equal((await cache.config('shop')).deadLetterTopic, 'shop.dead');
    assert.equal(reads(), 1);
    now += 6_000;
    fail(true);
    assert.deepEqual(await cache.signingSecrets('shop'), [secret]);
    assert.equal(reads(), 2, 'the expired copy was refreshed (and the refresh failed)');
    const empty = new CachedAppDelivery(store, { now: () => now }, 5_000);
    await assert.rejects(empty.signingSecrets('shop'), /postgres is unavailable/);
  });
});
