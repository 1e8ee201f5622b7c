/**
 * The Redis key scheme. Every key and the invalidation channel start with the configured prefix,
 * the cache version and the cluster id, e.g. `hourglass:v1:3f9c0a1b2c4d:token:<sha256>`. The
 * cluster id (cluster_meta in Postgres) keeps clusters, or test schemas, that share a Redis apart:
 * a token grant cached for one database is never served to a node of another. Bump {@link CACHE_VERSION} whenever the
 * shape of a cached value changes: nodes of the old and new version then never read each other's
 * entries during a rolling upgrade (the old ones expire on their own).
 */
// v2: grants carry the app's delivery settings (callback host allowlist, issue 12).
export const CACHE_VERSION = 'v2';

export interface KeyScheme {
  /** Cached {@link TokenGrant} of a token hash. */
  token(tokenHash: string): string;
  /** Token bucket of an app: a hash {t: tokens left, ts: last refill, epoch ms}. */
  rate(app: string): string;
  /** Pending-message counter of an app (an integer with a TTL: the reconciliation interval). */
  pending(app: string): string;
  /** Pub/sub channel announcing cache invalidations to every node. */
  readonly invalidations: string;
}

export function keyScheme(prefix: string, clusterId: string): KeyScheme {
  const base = `${prefix}${CACHE_VERSION}:${clusterId}:`;
  return {
    token: (tokenHash) => `${base}token:${tokenHash}`,
    rate: (app) => `${base}quota:rate:${app}`,
    pending: (app) => `${base}quota:pending:${app}`,
    invalidations: `${base}invalidate`,
  };
}
