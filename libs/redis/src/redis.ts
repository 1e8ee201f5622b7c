/**
 * RedisAdapter: the only place that knows ioredis. It implements the shared quota counters
 * ({@link QuotaBackend}) and the metadata cache ({@link AppCache}) on one command connection, plus
 * one subscriber connection for cache invalidations (a subscribed connection can run nothing else).
 *
 * Redis is an accelerator here, never the truth: Postgres holds apps and messages. So the adapter
 * fails fast instead of waiting for Redis: no offline queue, one attempt per command and a short
 * command timeout. Every failure surfaces as DependencyUnavailableError('redis') and the caller
 * decides (auth falls back to Postgres; quotas fail open or closed per config).
 */
import type {
  AppCache,
  AppCacheInvalidation,
  QuotaBackend,
  QuotaDecision,
  TokenGrant,
} from '@hourglass/core';
import { DependencyUnavailableError } from '@hourglass/core';
import { Redis } from 'ioredis';
import type { KeyScheme } from './keys';
import { keyScheme } from './keys';
import { RESERVE_PENDING, TAKE_TOKENS } from './scripts';

export interface RedisAdapterOptions {
  readonly url: string;
  /** Prepended to every key and channel. @default 'hourglass:' */
  readonly keyPrefix?: string;
  /** The cluster's id (AppStore.clusterId), part of every key. */
  readonly clusterId: string;
  /** A command not answered within this fails (and the caller falls back). @default 250 */
  readonly commandTimeoutMs?: number;
  /** How long a cached token grant lives in Redis; bounds staleness if an invalidation is lost. @default 60000 */
  readonly grantTtlMs?: number;
  /** How long a pending counter lives before it is reloaded from Postgres. @default 2000 */
  readonly pendingReconcileMs?: number;
  /** Connection state changes (not every failed command). @default ignored */
  readonly onConnectionChange?: (up: boolean, error?: unknown) => void;
}

type ScriptReply = [number, number];

interface ScriptedRedis extends Redis {
  takeTokens(
    key: string,
    rate: number,
    burst: number,
    now: number,
    count: number,
  ): Promise<ScriptReply>;
  reservePending(key: string, count: number, max: number): Promise<ScriptReply>;
}

export class RedisAdapter implements AppCache, QuotaBackend {
  private client: ScriptedRedis | undefined;
  private subscriber: Redis | undefined;
  private readonly keys: KeyScheme;
  private readonly listeners: Array<(change: AppCacheInvalidation) => void> = [];
  private up = false;

  constructor(private readonly options: RedisAdapterOptions) {
    this.keys = keyScheme(options.keyPrefix ?? 'hourglass:', options.clusterId);
  }

  get keyScheme(): KeyScheme {
    return this.keys;
  }

  /** Connects in the background: a node starts (and serves) while Redis is down. Idempotent. */
  start(): Promise<void> {
    if (this.client) return Promise.resolve();
    const common = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.options.commandTimeoutMs ?? 250,
      connectTimeout: 2000,
      // Reconnect forever, at most every 2 s: Redis coming back restores the fast path by itself.
      retryStrategy: (times: number) => Math.min(100 * times, 2000),
    };
    const client = new Redis(this.options.url, common) as ScriptedRedis;
    client.defineCommand('takeTokens', { numberOfKeys: 1, lua: TAKE_TOKENS });
    client.defineCommand('reservePending', { numberOfKeys: 1, lua: RESERVE_PENDING });
    client.on('ready', () => this.setUp(true));
    client.on('error', (error: unknown) => this.setUp(false, error));
    client.on('end', () => this.setUp(false));
    const subscriber = new Redis(this.options.url, { ...common, commandTimeout: undefined });
    // Pub/sub connections must be able to queue SUBSCRIBE until they are connected.
    subscriber.options.enableOfflineQueue = true;
    subscriber.on('error', () => undefined); // reported through the command connection
    subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.keys.invalidations) return;
      let change: AppCacheInvalidation;
      try {
        change = JSON.parse(text) as AppCacheInvalidation;
      } catch {
        return;
      }
      for (const listener of this.listeners) listener(change);
    });
    this.client = client;
    this.subscriber = subscriber;
    client.connect().catch(() => undefined);
    subscriber.connect().catch(() => undefined);
    // ioredis re-subscribes on reconnect by itself.
    subscriber.subscribe(this.keys.invalidations).catch(() => undefined);
    return Promise.resolve();
  }

  /** Resolves once the command connection is ready, or rejects after `timeoutMs` (tests, readiness). */
  async ready(timeoutMs = 5000): Promise<void> {
    const client = this.requireClient();
    const deadline = Date.now() + timeoutMs;
    while (client.status !== 'ready') {
      if (Date.now() > deadline)
        throw new DependencyUnavailableError(
          'redis',
          new Error(`not connected after ${timeoutMs} ms`),
        );
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const subscriber = this.subscriber;
    while (subscriber && subscriber.status !== 'ready') {
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    const subscriber = this.subscriber;
    this.client = undefined;
    this.subscriber = undefined;
    // quit() needs a live connection; disconnect() does not wait for one.
    await Promise.all(
      [client, subscriber].map(async (redis) => {
        if (!redis) return;
        if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
        else redis.disconnect();
      }),
    );
  }

  async ping(): Promise<void> {
    await this.guard((client) => client.ping());
  }

  // --- QuotaBackend -------------------------------------------------------------------------

  async takeTokens(
    app: string,
    count: number,
    ratePerSecond: number,
    burst: number,
    nowMs: number,
  ): Promise<QuotaDecision> {
    const [allowed, waitMs] = await this.guard((client) =>
      client.takeTokens(this.keys.rate(app), ratePerSecond, burst, Math.floor(nowMs), count),
    );
    return allowed === 1 ? { allowed: true } : { allowed: false, retryAfterMs: waitMs };
  }

  /**
   * The counter is a cache of `count(*)` over the app's unfinished messages: loaded from Postgres
   * when missing, incremented by every accepted request, and dropped by its TTL every
   * `pendingReconcileMs`, so deliveries and cancellations (which never touch Redis) are reflected
   * within that interval. Between reloads it over-counts (conservative), except for concurrent
   * requests racing a reload, which may each pass on the fresh count: a bounded overshoot.
   */
  async reservePending(
    app: string,
    count: number,
    max: number,
    countFromStore: () => Promise<number>,
  ): Promise<QuotaDecision> {
    const key = this.keys.pending(app);
    for (let round = 0; round < 3; round++) {
      const [status, value] = await this.guard((client) => client.reservePending(key, count, max));
      if (status === 1) return { allowed: true };
      if (status === 0) return { allowed: false, retryAfterMs: Math.max(value, 1) };
      const stored = await countFromStore();
      // NX: when another node loaded it meanwhile, its value (maybe already incremented) wins.
      await this.guard((client) =>
        client.set(key, String(stored), 'PX', this.options.pendingReconcileMs ?? 2000, 'NX'),
      );
    }
    // The key keeps vanishing (a tiny reconcile interval): decide on the store's count alone.
    const stored = await countFromStore();
    return stored + count <= max
      ? { allowed: true }
      : { allowed: false, retryAfterMs: this.options.pendingReconcileMs ?? 2000 };
  }

  // --- AppCache -----------------------------------------------------------------------------

  async getGrant(tokenHash: string): Promise<TokenGrant | undefined> {
    const text = await this.guard((client) => client.get(this.keys.token(tokenHash)));
    if (text === null) return undefined;
    try {
      return JSON.parse(text) as TokenGrant;
    } catch {
      return undefined;
    }
  }

  async setGrant(tokenHash: string, grant: TokenGrant): Promise<void> {
    await this.guard((client) =>
      client.set(
        this.keys.token(tokenHash),
        JSON.stringify(grant),
        'PX',
        this.options.grantTtlMs ?? 60_000,
      ),
    );
  }

  /** Deletes the keys, then tells every node (this one too, through its own subscription). */
  async invalidate(change: AppCacheInvalidation): Promise<void> {
    await this.guard(async (client) => {
      if (change.tokenHashes.length > 0)
        await client.del(...change.tokenHashes.map((hash) => this.keys.token(hash)));
      await client.publish(this.keys.invalidations, JSON.stringify(change));
    });
  }

  onInvalidate(listener: (change: AppCacheInvalidation) => void): void {
    this.listeners.push(listener);
  }

  private setUp(up: boolean, error?: unknown): void {
    if (up === this.up) return;
    this.up = up;
    this.options.onConnectionChange?.(up, error);
  }

  private async guard<T>(work: (client: ScriptedRedis) => Promise<T>): Promise<T> {
    try {
      return await work(this.requireClient());
    } catch (error) {
      throw new DependencyUnavailableError('redis', error);
    }
  }

  private requireClient(): ScriptedRedis {
    if (!this.client)
      throw new DependencyUnavailableError('redis', new Error('RedisAdapter is not started'));
    return this.client;
  }
}
