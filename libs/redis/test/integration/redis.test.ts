/**
 * RedisAdapter against the real Redis (scripts/services up redis), under a key prefix of its own.
 * Time is passed in by the test; the bucket never reads a clock.
 */
import assert from 'node:assert/strict';
import type { AppCacheInvalidation, TokenGrant } from '@hourglass/core';
import { DependencyUnavailableError, NO_DELIVERY_CONFIG, NO_QUOTAS } from '@hourglass/core';
import { redisPrefix, serviceUrls } from '@hourglass/testkit';
import { Redis } from 'ioredis';
import { CACHE_VERSION, RedisAdapter } from '../../src';

const T0 = 1_900_000_000_000;

describe('RedisAdapter (quotas and the app cache)', () => {
  const urls = serviceUrls();
  const prefix = redisPrefix();
  let adapter: RedisAdapter;
  let peer: RedisAdapter;
  let raw: Redis;

  before(async () => {
    adapter = new RedisAdapter({
      url: urls.redis,
      keyPrefix: prefix,
      clusterId: 'c1',
      pendingReconcileMs: 300,
    });
    peer = new RedisAdapter({ url: urls.redis, keyPrefix: prefix, clusterId: 'c1' });
    await adapter.start();
    await peer.start();
    await adapter.ready();
    await peer.ready();
    raw = new Redis(urls.redis);
  });

  after(async () => {
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length > 0) await raw.del(...keys);
    await raw.quit();
    await Promise.all([adapter.stop(), peer.stop()]);
  });

  it('keys carry the prefix, the cache version and the cluster id', () => {
    assert.equal(adapter.keyScheme.token('abc'), `${prefix}${CACHE_VERSION}:c1:token:abc`);
    assert.equal(CACHE_VERSION, 'v2');
  });

  describe('token bucket', () => {
    it('admits a burst, then refuses with the time until a token exists, and refills with time', async () => {
      for (let i = 0; i < 3; i++)
        assert.deepEqual(await adapter.takeTokens('a1', 1, 1, 3, T0), { allowed: true });
      assert.deepEqual(await adapter.takeTokens('a1', 1, 1, 3, T0), {
        allowed: false,
        retryAfterMs: 1000,
      });
      assert.deepEqual(await adapter.takeTokens('a1', 1, 1, 3, T0 + 400), {
        allowed: false,
        retryAfterMs: 600,
      });
      assert.deepEqual(await adapter.takeTokens('a1', 1, 1, 3, T0 + 1000), { allowed: true });
      // A clock behind the stored time refills nothing instead of failing.
      assert.equal((await adapter.takeTokens('a1', 1, 1, 3, T0 - 5000)).allowed, false);
      // Never beyond the burst, however long the bucket was idle.
      for (let i = 0; i < 3; i++)
        assert.equal((await adapter.takeTokens('a1', 1, 1, 3, T0 + 100_000)).allowed, true);
      assert.equal((await adapter.takeTokens('a1', 1, 1, 3, T0 + 100_000)).allowed, false);
    });

    it('lets a request larger than the bucket through when it is full, leaving a debt', async () => {
      assert.deepEqual(await adapter.takeTokens('a2', 5, 2, 2, T0), { allowed: true });
      // 2 - 5 = -3 tokens: one token needs 4 more, at 2 per second.
      assert.deepEqual(await adapter.takeTokens('a2', 1, 2, 2, T0), {
        allowed: false,
        retryAfterMs: 2000,
      });
    });

    it('is shared: two adapters drain one bucket', async () => {
      assert.equal((await adapter.takeTokens('a3', 1, 1, 2, T0)).allowed, true);
      assert.equal((await peer.takeTokens('a3', 1, 1, 2, T0)).allowed, true);
      assert.equal((await adapter.takeTokens('a3', 1, 1, 2, T0)).allowed, false);
    });
  });

  describe('pending counter', () => {
    it('loads the count from the store when missing, counts reservations, refuses over the maximum and reloads once the count expires', async () => {
      let loads = 0;
      let stored = 3;
      const count = (): Promise<number> => {
        loads++;
        return Promise.resolve(stored);
      };
      assert.deepEqual(await adapter.reservePending('p1', 1, 5, count), { allowed: true });
      assert.deepEqual(await adapter.reservePending('p1', 1, 5, count), { allowed: true });
      const full = await adapter.reservePending('p1', 1, 5, count);
      assert.equal(full.allowed, false);
      assert.ok(!full.allowed && full.retryAfterMs > 0 && full.retryAfterMs <= 300);
      assert.equal(loads, 1);
      // The count is a key that lives for the reconciliation interval. Deleting it is what its
      // expiry does, without a test that waits out the interval and hopes Redis expired it.
      const key = adapter.keyScheme.pending('p1');
      const ttl = await raw.pttl(key);
      assert.ok(ttl > 0 && ttl <= 300, `the count must expire within the interval (pttl ${ttl})`);
      stored = 1; // deliveries happened meanwhile
      await raw.del(key);
      assert.deepEqual(await adapter.reservePending('p1', 4, 5, count), { allowed: true });
      assert.equal(loads, 2);
    });
  });

  describe('app cache', () => {
    const grant: TokenGrant = {
      app: {
        name: 'shop',
        description: '',
        createdAtMs: T0,
        disabled: false,
        quotas: NO_QUOTAS,
        topics: ['t1'],
        tokens: [],
        delivery: NO_DELIVERY_CONFIG,
      },
      tokenExpiresAtMs: null,
    };

    it('stores grants by token hash and drops them on invalidation, telling every node', async () => {
      assert.equal(await adapter.getGrant('h1'), undefined);
      await adapter.setGrant('h1', grant);
      assert.deepEqual(await peer.getGrant('h1'), grant);
      assert.ok((await raw.pttl(adapter.keyScheme.token('h1'))) > 0, 'grants expire on their own');
      const heard = new Promise<AppCacheInvalidation>((resolve) => peer.onInvalidate(resolve));
      await adapter.invalidate({ app: 'shop', tokenHashes: ['h1'] });
      assert.deepEqual(await heard, { app: 'shop', tokenHashes: ['h1'] });
      assert.equal(await peer.getGrant('h1'), undefined);
    });

    it('keeps clusters sharing a Redis apart', async () => {
      const other = new RedisAdapter({ url: urls.redis, keyPrefix: prefix, clusterId: 'c2' });
      await other.start();
      try {
        await other.ready();
        await adapter.setGrant('h2', grant);
        assert.equal(await other.getGrant('h2'), undefined);
      } finally {
        await other.stop();
      }
    });
  });

  it('fails fast with DependencyUnavailableError when Redis is unreachable', async () => {
    const down = new RedisAdapter({
      url: 'redis://127.0.0.1:1',
      keyPrefix: prefix,
      clusterId: 'c1',
    });
    await down.start();
    try {
      const started = Date.now();
      await assert.rejects(
        down.takeTokens('x', 1, 1, 1, T0),
        (error) => error instanceof DependencyUnavailableError && error.dependency === 'redis',
      );
      await assert.rejects(down.getGrant('x'), DependencyUnavailableError);
      assert.ok(Date.now() - started < 1000, 'a dead Redis must not hold a request');
    } finally {
      await down.stop();
    }
  });
});
