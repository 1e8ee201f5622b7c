/**
 * Who is calling. Tokens are compared through their SHA-256 digests, so the lookup takes the same
 * path whatever the token, and a process dump never holds a map keyed by clear tokens.
 */
import { createHash, randomBytes } from 'node:crypto';
import type {
  AppCache,
  AppCacheInvalidation,
  AppPatch,
  AppQuotas,
  AppRecord,
  AppStats,
  AppStore,
  DueBucket,
  Publisher,
  QuotaBackend,
  TokenGrant,
} from '@hourglass/core';
import {
  DEFAULT_MAX_TOPIC_PARTITIONS,
  DependencyUnavailableError,
  HourglassError,
  NO_QUOTAS,
  textProblem,
  topicNameProblem,
} from '@hourglass/core';
import type { ErrorDetail } from '@hourglass/core';
import type { Clock, Logger } from '@hourglass/core';
import type { AppIdentity, MessageService, MessageView, QuotaGate } from './service';

export interface AppDirectory {
  /** The app holding this token, or null. */
  authenticate(token: string): Promise<AppIdentity | null>;
  isAdmin(token: string): boolean;
}

/**
 * The token of an `Authorization: Bearer <token>` header (HTTP) or `authorization` metadata value
 * (gRPC), or null when there is none. The scheme is case-insensitive (RFC 7235).
 */
export function bearerToken(authorization: unknown): string | null {
  if (typeof authorization !== 'string') return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return match?.[1] ?? null;
}

/**
 * The one rule for admin endpoints, on every transport: the admin token passes; a missing or
 * unknown token is `unauthenticated` (401); any app's token, a disabled app's included, is
 * `forbidden` (403). Throws the refusal; resolves when the caller is the admin.
 */
export async function requireAdminToken(apps: AppDirectory, token: string | null): Promise<void> {
  if (!token)
    throw new HourglassError(
      'unauthenticated',
      'send the admin token as "Authorization: Bearer <token>"',
    );
  if (apps.isAdmin(token)) return;
  let app: AppIdentity | null;
  try {
    app = await apps.authenticate(token);
  } catch (error) {
    // A disabled app's token (DbAppDirectory throws `forbidden` for it) is still an app token.
    if (error instanceof HourglassError && error.code === 'forbidden')
      throw new HourglassError(
        'forbidden',
        'app tokens may not use admin endpoints; use the admin token',
      );
    throw error;
  }
  if (!app) throw new HourglassError('unauthenticated', 'unknown token');
  throw new HourglassError(
    'forbidden',
    `app "${app.name}" may not use admin endpoints; use the admin token`,
  );
}

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class StaticAppDirectory implements AppDirectory {
  private readonly byDigest = new Map<string, AppIdentity>();
  private readonly adminDigest: string;

  constructor(
    apps: ReadonlyArray<{ name: string; token: string; topics: readonly string[] }>,
    adminToken: string,
  ) {
    for (const app of apps)
      this.byDigest.set(tokenDigest(app.token), { name: app.name, topics: new Set(app.topics) });
    this.adminDigest = tokenDigest(adminToken);
  }

  authenticate(token: string): Promise<AppIdentity | null> {
    return Promise.resolve(this.byDigest.get(tokenDigest(token)) ?? null);
  }

  isAdmin(token: string): boolean {
    return tokenDigest(token) === this.adminDigest;
  }
}

// ---------------------------------------------------------------------------------------------
// Apps in Postgres (issue #7): the directory, its caches, the admin operations and quotas.

export interface DbAppDirectoryOptions {
  store: AppStore;
  /** The shared cache (Redis). Without it, or while it is down, misses go to the store. */
  cache?: AppCache;
  adminToken: string;
  clock: Clock;
  logger: Logger;
  /**
   * How long this process trusts its own copy of a grant. It bounds how stale a node can be when
   * an invalidation message is lost (pub/sub is at most once) or Redis is down. @default 5000
   */
  localTtlMs?: number;
  /** Entries of the in-process cache; the least recently used goes first. @default 10000 */
  localMaxEntries?: number;
}

/** Unknown tokens are remembered this long, so a client retrying a bad token does not hit Postgres each time. */
const NEGATIVE_TTL_MS = 1000;

interface LocalEntry {
  readonly grant: TokenGrant | null;
  readonly expiresAtMs: number;
}

/**
 * The {@link AppDirectory} on the {@link AppStore}. A lookup goes in-process LRU → Redis →
 * Postgres, and fills the layers it missed; the hot path (a known token) reads nothing outside the
 * process. Admin changes go through {@link DbAppDirectory.invalidate}: the Redis keys are deleted
 * and every node drops its in-process copies on the invalidation message.
 */
export class DbAppDirectory implements AppDirectory {
  private readonly adminDigest: string;
  private readonly local = new Map<string, LocalEntry>();
  private readonly localTtlMs: number;
  private readonly localMaxEntries: number;
  private cacheWarnedAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: DbAppDirectoryOptions) {
    this.adminDigest = tokenDigest(options.adminToken);
    this.localTtlMs = options.localTtlMs ?? 5000;
    this.localMaxEntries = options.localMaxEntries ?? 10_000;
    options.cache?.onInvalidate((change) => this.dropLocal(change));
  }

  /**
   * Makes the config apps exist in the store (config is the bootstrap): each is created when
   * missing, its topics granted and its config token made current. Apps created through the admin
   * API are not touched; a config app's grants are re-asserted at every start.
   */
  async bootstrap(
    apps: ReadonlyArray<{ name: string; token: string; topics: readonly string[] }>,
  ): Promise<void> {
    const now = this.options.clock.now();
    for (const app of apps) {
      await this.options.store.ensureConfigApp(
        { name: app.name, topics: app.topics },
        tokenDigest(app.token),
        now,
      );
    }
    await this.invalidate({ tokenHashes: apps.map((app) => tokenDigest(app.token)) });
  }

  isAdmin(token: string): boolean {
    return tokenDigest(token) === this.adminDigest;
  }

  /** Throws `forbidden` for a disabled app's token: it is known, and refusing it says why. */
  async authenticate(token: string): Promise<AppIdentity | null> {
    const digest = tokenDigest(token);
    if (digest === this.adminDigest) return null;
    const grant = await this.lookup(digest);
    if (!grant) return null;
    if (grant.app.disabled)
      throw new HourglassError('forbidden', `app "${grant.app.name}" is disabled`);
    return { name: grant.app.name, topics: new Set(grant.app.topics), quotas: grant.app.quotas };
  }

  /** Drops cached grants everywhere: Redis keys, and (through pub/sub) every node's local copies. */
  async invalidate(change: AppCacheInvalidation): Promise<void> {
    this.dropLocal(change);
    if (!this.options.cache) return;
    try {
      await this.options.cache.invalidate(change);
    } catch (error) {
      // The change is committed in Postgres; other nodes pick it up when their local TTL and the
      // Redis TTL run out.
      this.warnCache(error, 'could not invalidate the app cache in Redis');
    }
  }

  private async lookup(digest: string): Promise<TokenGrant | null> {
    const now = this.options.clock.now();
    const entry = this.local.get(digest);
    if (entry && entry.expiresAtMs > now) {
      this.local.delete(digest); // re-insert: Map order is the LRU order
      this.local.set(digest, entry);
      return live(entry.grant, now);
    }
    let grant: TokenGrant | null | undefined;
    const cache = this.options.cache;
    if (cache) {
      try {
        grant = await cache.getGrant(digest);
      } catch (error) {
        this.warnCache(error, 'app cache (Redis) unavailable; authenticating from Postgres');
      }
    }
    if (grant === undefined) {
      grant = await this.options.store.findByToken(digest, now);
      if (grant && cache) {
        await cache
          .setGrant(digest, grant)
          .catch((error: unknown) => this.warnCache(error, 'could not fill the app cache'));
      }
    }
    this.remember(digest, grant, now);
    return live(grant, now);
  }

  private remember(digest: string, grant: TokenGrant | null, now: number): void {
    let expiresAtMs = now + (grant ? this.localTtlMs : NEGATIVE_TTL_MS);
    if (grant?.tokenExpiresAtMs != null)
      expiresAtMs = Math.min(expiresAtMs, grant.tokenExpiresAtMs);
    this.local.delete(digest);
    this.local.set(digest, { grant, expiresAtMs });
    while (this.local.size > this.localMaxEntries) {
      const oldest = this.local.keys().next().value;
      if (oldest === undefined) break;
      this.local.delete(oldest);
    }
  }

  private dropLocal(change: AppCacheInvalidation): void {
    for (const hash of change.tokenHashes) this.local.delete(hash);
    if (change.app === undefined) return;
    for (const [hash, entry] of this.local)
      if (entry.grant?.app.name === change.app) this.local.delete(hash);
  }

  private warnCache(error: unknown, message: string): void {
    const now = this.options.clock.now();
    if (now - this.cacheWarnedAtMs < 10_000) return; // one line per 10 s while Redis is down
    this.cacheWarnedAtMs = now;
    this.options.logger.warn({ err: (error as Error).message }, message);
  }
}

function live(grant: TokenGrant | null, now: number): TokenGrant | null {
  if (!grant) return null;
  return grant.tokenExpiresAtMs !== null && grant.tokenExpiresAtMs <= now ? null : grant;
}

export type QuotaFailMode = 'open' | 'closed';

export interface SharedQuotaGateOptions {
  backend: QuotaBackend;
  store: AppStore;
  clock: Clock;
  logger: Logger;
  /** What a Redis outage means for apps with a rate or pending quota. */
  failMode: QuotaFailMode;
}

/**
 * The rate and max-pending quotas, shared by every node through the {@link QuotaBackend} (Redis).
 * Apps without those quotas never touch Redis. When Redis is unreachable, `failMode` decides:
 * `open` admits (quotas are not enforced meanwhile), `closed` refuses with 503 `unavailable`.
 */
export class SharedQuotaGate implements QuotaGate {
  private warnedAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: SharedQuotaGateOptions) {}

  async admit(app: AppIdentity, count: number): Promise<void> {
    const quotas = app.quotas;
    if (!quotas || count <= 0) return;
    const { backend, store, clock } = this.options;
    try {
      if (quotas.ratePerSecond !== null) {
        const burst = quotas.burst ?? Math.max(1, Math.ceil(quotas.ratePerSecond));
        const decision = await backend.takeTokens(
          app.name,
          count,
          quotas.ratePerSecond,
          burst,
          clock.now(),
        );
        if (!decision.allowed) {
          throw rateLimited(
            `app "${app.name}" is over its rate of ${quotas.ratePerSecond} messages per second`,
            decision.retryAfterMs,
          );
        }
      }
      if (quotas.maxPending !== null) {
        const decision = await backend.reservePending(app.name, count, quotas.maxPending, () =>
          store.countPending(app.name),
        );
        if (!decision.allowed) {
          throw rateLimited(
            `app "${app.name}" has reached its maximum of ${quotas.maxPending} pending messages`,
            decision.retryAfterMs,
          );
        }
      }
    } catch (error) {
      if (!(error instanceof DependencyUnavailableError) || error.dependency !== 'redis')
        throw error;
      this.warn(error);
      if (this.options.failMode === 'closed') throw error;
    }
  }

  private warn(error: DependencyUnavailableError): void {
    const now = this.options.clock.now();
    if (now - this.warnedAtMs < 10_000) return;
    this.warnedAtMs = now;
    this.options.logger.warn(
      { err: (error.cause as Error | undefined)?.message, failMode: this.options.failMode },
      this.options.failMode === 'open'
        ? 'Redis unavailable: quotas not enforced (fail open)'
        : 'Redis unavailable: refusing quota-limited apps (fail closed)',
    );
  }
}

function rateLimited(message: string, retryAfterMs: number): HourglassError {
  return new HourglassError(
    'rate_limited',
    message,
    undefined,
    Math.max(1, Math.ceil(retryAfterMs / 1000)),
  );
}

/** Tokens are 32 random bytes; the prefix makes a leaked one easy to recognise (secret scanners). */
export const TOKEN_PREFIX = 'hg_';

export function newToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export interface AppAdminDeps {
  store: AppStore;
  directory: DbAppDirectory;
  publisher: Publisher;
  service: MessageService;
  clock: Clock;
  /** Most partitions of a topic created through {@link AppAdmin.addTopic}. @default 64 */
  maxTopicPartitions?: number;
}

/** Default due-time buckets of the statistics, relative to now. */
export const STATS_BUCKETS: readonly DueBucket[] = [
  { label: 'overdue', untilMs: 0 },
  { label: 'within1m', untilMs: 60_000 },
  { label: 'within1h', untilMs: 3_600_000 },
  { label: 'within1d', untilMs: 86_400_000 },
  { label: 'later', untilMs: null },
];

export interface CreateAppInput {
  name: string;
  description?: string;
  topics?: readonly string[];
  quotas?: Partial<AppQuotas>;
}

/**
 * The admin operations, transport-neutral like {@link MessageService}. Every change is committed
 * in Postgres first and then invalidates the caches. Clear tokens exist only in the return value
 * of {@link AppAdmin.createApp} and {@link AppAdmin.rotateToken}.
 */
export class AppAdmin {
  constructor(private readonly deps: AppAdminDeps) {}

  listApps(): Promise<AppRecord[]> {
    return this.deps.store.listApps();
  }

  async getApp(name: string): Promise<AppRecord> {
    return found(await this.deps.store.getApp(name), name);
  }

  async createApp(input: CreateAppInput): Promise<{ app: AppRecord; token: string }> {
    const problems: ErrorDetail[] = [];
    if (input.description !== undefined) checkText(problems, 'description', input.description);
    (input.topics ?? []).forEach((topic, index) => {
      const problem = topicNameProblem(topic);
      if (problem !== null) problems.push({ path: `topics/${index}`, message: problem });
    });
    refuseIfAny(problems);
    if (input.topics && input.topics.length > 0) {
      // Kafka's refusals name `topic`; this body calls it `topics`.
      await this.deps.publisher.ensureTopics(input.topics, {}).catch((error: unknown) => {
        throw error instanceof HourglassError && error.code === 'invalid_request'
          ? new HourglassError(
              error.code,
              error.message,
              error.details?.map((d) => (d.path === 'topic' ? { ...d, path: 'topics' } : d)),
            )
          : error;
      });
    }
    const token = newToken();
    const app = await this.deps.store.createApp(
      {
        name: input.name,
        description: input.description ?? '',
        topics: input.topics ?? [],
        quotas: { ...NO_QUOTAS, ...input.quotas },
      },
      tokenDigest(token),
      this.deps.clock.now(),
    );
    if (!app)
      throw new HourglassError('id_conflict', `app "${input.name}" already exists`, [
        { path: 'name', message: 'taken' },
      ]);
    await this.deps.directory.invalidate({ app: app.name, tokenHashes: [tokenDigest(token)] });
    return { app, token };
  }

  async updateApp(name: string, patch: AppPatch): Promise<AppRecord> {
    const problems: ErrorDetail[] = [];
    if (patch.description !== undefined) checkText(problems, 'description', patch.description);
    refuseIfAny(problems);
    const app = found(await this.deps.store.updateApp(name, patch), name);
    await this.invalidate(name);
    return app;
  }

  /** The app's scheduled messages stay and are still delivered: they were acknowledged. */
  async deleteApp(name: string): Promise<void> {
    const hashes = await this.deps.store.deleteApp(name);
    if (hashes === null) throw notFound(name);
    await this.deps.directory.invalidate({ app: name, tokenHashes: hashes });
  }

  async rotateToken(name: string, graceMs: number): Promise<{ app: AppRecord; token: string }> {
    const token = newToken();
    const app = found(
      await this.deps.store.rotateToken(name, tokenDigest(token), this.deps.clock.now(), graceMs),
      name,
    );
    await this.invalidate(name);
    return { app, token };
  }

  /**
   * Creates the Kafka topic when missing (before granting: a grant of a topic that cannot exist
   * would only fail deliveries later). The name follows Kafka's rules and `partitions` is at most
   * `maxTopicPartitions`, checked before Kafka is asked; the publisher refuses a replication
   * factor above the broker count and maps Kafka's refusals to `invalid_request`.
   */
  async addTopic(
    name: string,
    topic: string,
    options: { partitions?: number; replicationFactor?: number } = {},
  ): Promise<AppRecord> {
    const problems: ErrorDetail[] = [];
    const topicProblem = topicNameProblem(topic);
    if (topicProblem !== null) problems.push({ path: 'topic', message: topicProblem });
    const maxPartitions = this.deps.maxTopicPartitions ?? DEFAULT_MAX_TOPIC_PARTITIONS;
    const { partitions, replicationFactor } = options;
    if (
      partitions !== undefined &&
      (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > maxPartitions)
    )
      problems.push({
        path: 'partitions',
        message: `must be an integer from 1 to ${maxPartitions} (limits.maxTopicPartitions)`,
      });
    if (
      replicationFactor !== undefined &&
      (!Number.isSafeInteger(replicationFactor) || replicationFactor < 1)
    )
      problems.push({ path: 'replicationFactor', message: 'must be an integer >= 1' });
    refuseIfAny(problems);
    await this.getApp(name);
    await this.deps.publisher.ensureTopics([topic], options);
    const app = found(await this.deps.store.grantTopic(name, topic), name);
    await this.invalidate(name);
    return app;
  }

  async removeTopic(name: string, topic: string): Promise<AppRecord> {
    const app = found(await this.deps.store.revokeTopic(name, topic), name);
    await this.invalidate(name);
    return app;
  }

  async setQuotas(name: string, quotas: AppQuotas): Promise<AppRecord> {
    const app = found(await this.deps.store.setQuotas(name, quotas), name);
    await this.invalidate(name);
    return app;
  }

  getMessage(app: string, id: string): Promise<MessageView> {
    return this.deps.service.get(adminView(app), id);
  }

  cancelMessage(app: string, id: string): Promise<{ id: string; state: 'cancelled' }> {
    return this.deps.service.cancel(adminView(app), id);
  }

  async stats(): Promise<AppStats & { at: string; buckets: readonly DueBucket[] }> {
    const now = this.deps.clock.now();
    return {
      at: new Date(now).toISOString(),
      buckets: STATS_BUCKETS,
      ...(await this.deps.store.stats(now, STATS_BUCKETS)),
    };
  }

  private async invalidate(name: string): Promise<void> {
    await this.deps.directory.invalidate({
      app: name,
      tokenHashes: await this.deps.store.tokenHashes(name),
    });
  }
}

/** The identity the admin acts as to read or cancel an app's message: the app, with no topics. */
function adminView(app: string): AppIdentity {
  return { name: app, topics: new Set() };
}

/** Text Postgres cannot store as sent (NUL, lone surrogates): the request's fault, not a failed statement. */
function checkText(problems: ErrorDetail[], path: string, text: string): void {
  const problem = textProblem(text);
  if (problem !== null) problems.push({ path, message: problem });
}

function refuseIfAny(problems: readonly ErrorDetail[]): void {
  if (problems.length === 0) return;
  throw new HourglassError(
    'invalid_request',
    `invalid request: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
    problems,
  );
}

function notFound(name: string): HourglassError {
  return new HourglassError('not_found', `no app "${name}"`);
}

function found<T>(value: T | null, name: string): T {
  if (value === null) throw notFound(name);
  return value;
}
