/**
 * Who is calling. Tokens are compared through their SHA-256 digests, so the lookup takes the same
 * path whatever the token, and a process dump never holds a map keyed by clear tokens.
 */
import { createHash } from 'node:crypto';
import type { AppCache, AppCacheInvalidation, AppStore, TokenGrant } from '@hourglass/core';
import { HourglassError } from '@hourglass/core';

import type { Clock, Logger } from '@hourglass/core';
import type { AppIdentity } from './service';

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
    return {
      name: grant.app.name,
      topics: new Set(grant.app.topics),
      quotas: grant.app.quotas,
      delivery: grant.app.delivery,
    };
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
