/**
 * The domain interfaces of the admin side: apps, their tokens, topics, quotas and delivery
 * settings, and the shared cache and quota counters (libs/postgres, libs/redis implement them).
 * Tokens never cross these interfaces in clear: callers hash them first (SHA-256, base64url), so
 * no adapter can store or cache a usable token.
 */
import type { RetryStrategy } from './retry-strategy';
import type { AppRetention, AppRetentionPatch } from './retention';

/** Per-app limits applied on top of the global ones; null means "no app-specific limit". */
export interface AppQuotas {
  /** Messages accepted per second, refilled continuously (token bucket). */
  readonly ratePerSecond: number | null;
  /** Bucket size: how many messages may arrive at once after a quiet period. null: one second's worth. */
  readonly burst: number | null;
  /** Messages scheduled but not yet delivered, cancelled or failed. */
  readonly maxPending: number | null;
  /** Lower than `limits.maxPayloadBytes` to take effect. */
  readonly maxPayloadBytes: number | null;
  /** Lower than `limits.maxDelayDays` to take effect. */
  readonly maxDelayMs: number | null;
}

export const NO_QUOTAS: AppQuotas = Object.freeze({
  ratePerSecond: null,
  burst: null,
  maxPending: null,
  maxPayloadBytes: null,
  maxDelayMs: null,
});

/** An app as the admin side sees it. */
export interface AppRecord {
  readonly name: string;
  readonly description: string;
  readonly createdAtMs: number;
  readonly disabled: boolean;
  readonly quotas: AppQuotas;
  /** Topics granted to the app, sorted. */
  readonly topics: readonly string[];
  /** The app's tokens (never their hashes): when each was issued and when it stops working. */
  readonly tokens: ReadonlyArray<{
    readonly createdAtMs: number;
    readonly expiresAtMs: number | null;
  }>;
  /** How the app's callbacks are delivered (admin-set; every field optional). */
  readonly delivery: AppDeliveryConfig;
  /**
   * How long its finished messages are kept, where it differs from the configured retention.
   * Absent in records made before retention settings existed (an older node's cache entry): the
   * defaults apply.
   */
  readonly retention?: AppRetention;
}

/** Alert events for an app's deliveries that keep failing (signed like callbacks). */
export interface AppAlerts {
  /** One alert when a target's attempts reach this many, and one more when it finally fails. */
  readonly afterAttempts: number;
  /** An HTTP endpoint the alert event is POSTed to (SSRF-guarded like callbacks). */
  readonly url: string | null;
  /** A Kafka topic the alert event is produced to. */
  readonly topic: string | null;
}

/** An app's admin-set delivery settings. Secrets are not part of it (see AppStore.signingSecrets). */
export interface AppDeliveryConfig {
  /** Hosts its callbacks may call (`example.com`, `*.example.com`); null: any public host. */
  readonly callbackHosts: readonly string[] | null;
  /** Where a target that finally fails is also produced, with the failure in its headers. */
  readonly deadLetterTopic: string | null;
  readonly alerts: AppAlerts | null;
  /** The app's default retry strategy, for messages that name none. null: the global default. */
  readonly retry: RetryStrategy | null;
  /** When the signing secret was last created or rotated, and until when the previous one is still sent. */
  readonly signingSecretCreatedAtMs: number | null;
  readonly previousSecretExpiresAtMs: number | null;
}

export const NO_DELIVERY_CONFIG: AppDeliveryConfig = Object.freeze({
  callbackHosts: null,
  deadLetterTopic: null,
  alerts: null,
  retry: null,
  signingSecretCreatedAtMs: null,
  previousSecretExpiresAtMs: null,
});

/** A change to {@link AppDeliveryConfig}; absent fields stay, null clears. */
export interface AppDeliveryPatch {
  readonly callbackHosts?: readonly string[] | null;
  readonly deadLetterTopic?: string | null;
  readonly alerts?: AppAlerts | null;
  readonly retry?: RetryStrategy | null;
}

/** What a token proves: the app, and until when the proof holds (null: until rotated). */
export interface TokenGrant {
  readonly app: AppRecord;
  readonly tokenExpiresAtMs: number | null;
}

export interface NewApp {
  readonly name: string;
  readonly description: string;
  readonly topics: readonly string[];
  readonly quotas: AppQuotas;
}

export interface AppPatch {
  readonly description?: string;
  readonly disabled?: boolean;
}

/** Counts for the admin statistics. `pendingByBucket` keys are the bucket labels given to {@link AppStore.stats}. */
export interface AppStats {
  readonly apps: number;
  readonly byState: Readonly<Record<string, number>>;
  readonly byApp: ReadonlyArray<{
    readonly app: string;
    readonly byState: Readonly<Record<string, number>>;
  }>;
  readonly pendingByApp: ReadonlyArray<{
    readonly app: string;
    readonly buckets: Readonly<Record<string, number>>;
  }>;
}

/** A due-time bucket for statistics: messages due before `untilMs` from now (null: any later time). */
export interface DueBucket {
  readonly label: string;
  readonly untilMs: number | null;
}

/** The apps' metadata store (libs/postgres). Every method throws DependencyUnavailableError when unreachable. */
export interface AppStore {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A random id fixed when the cluster's database was created; namespaces shared caches. */
  clusterId(): Promise<string>;
  listApps(): Promise<AppRecord[]>;
  getApp(name: string): Promise<AppRecord | null>;
  /** null when the name is taken. */
  createApp(app: NewApp, tokenHash: string, nowMs: number): Promise<AppRecord | null>;
  /**
   * Bootstrap from config: creates the app when missing, grants its topics, and makes `tokenHash`
   * its config token (replacing an earlier config token). Tokens issued by the admin API stay.
   */
  ensureConfigApp(
    app: { name: string; topics: readonly string[] },
    tokenHash: string,
    nowMs: number,
  ): Promise<void>;
  updateApp(name: string, patch: AppPatch): Promise<AppRecord | null>;
  /** Removes the app, its tokens and grants; returns the removed token hashes (null: no such app). Messages stay. */
  deleteApp(name: string): Promise<string[] | null>;
  /** Every token hash of the app, expired ones included (for cache invalidation). */
  tokenHashes(name: string): Promise<string[]>;
  /**
   * Adds a token; the app's other tokens expire `graceMs` from now (0: at once), those already
   * expiring sooner keep their earlier expiry. null when there is no such app.
   */
  rotateToken(
    name: string,
    tokenHash: string,
    nowMs: number,
    graceMs: number,
  ): Promise<AppRecord | null>;
  /** The app holding an unexpired token with this hash, or null. Disabled apps are returned (callers refuse them). */
  findByToken(tokenHash: string, nowMs: number): Promise<TokenGrant | null>;
  grantTopic(name: string, topic: string): Promise<AppRecord | null>;
  revokeTopic(name: string, topic: string): Promise<AppRecord | null>;
  setQuotas(name: string, quotas: AppQuotas): Promise<AppRecord | null>;
  /** Messages of the app not yet finished (scheduled or being delivered). */
  countPending(name: string): Promise<number>;
  setDeliveryConfig(name: string, patch: AppDeliveryPatch): Promise<AppRecord | null>;
  /** Changes the app's retention overrides (absent fields stay, null restores the default). */
  setRetention(name: string, patch: AppRetentionPatch): Promise<AppRecord | null>;
  /**
   * The secrets callbacks of the app are signed with, newest first: the current one, and the
   * previous one while its grace period lasts. An app without a secret (created before secrets
   * existed) gets `generate()`'s, stored, so every node signs with the same one. null: no such app.
   */
  signingSecrets(name: string, nowMs: number, generate: () => string): Promise<string[] | null>;
  /**
   * Makes `secret` the app's signing secret; the previous one is still sent for `graceMs` (0: not
   * at all). null when there is no such app.
   */
  rotateSigningSecret(
    name: string,
    secret: string,
    nowMs: number,
    graceMs: number,
  ): Promise<AppRecord | null>;
  stats(nowMs: number, buckets: readonly DueBucket[]): Promise<AppStats>;
}

/**
 * The shared metadata cache (libs/redis): token hash → grant. `undefined` is a miss. An
 * invalidation deletes the keys and tells every node (including this one) through
 * {@link AppCache.onInvalidate}, so in-process caches drop their copies too.
 */
export interface AppCacheInvalidation {
  readonly app?: string;
  readonly tokenHashes: readonly string[];
}

export interface AppCache {
  start(): Promise<void>;
  stop(): Promise<void>;
  getGrant(tokenHash: string): Promise<TokenGrant | undefined>;
  setGrant(tokenHash: string, grant: TokenGrant): Promise<void>;
  invalidate(change: AppCacheInvalidation): Promise<void>;
  onInvalidate(listener: (change: AppCacheInvalidation) => void): void;
}

export type QuotaDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

/** The shared quota counters (libs/redis). Throws DependencyUnavailableError when unreachable. */
export interface QuotaBackend {
  /** Takes `count` tokens from the app's bucket at `nowMs`, or says how long until they exist. */
  takeTokens(
    app: string,
    count: number,
    ratePerSecond: number,
    burst: number,
    nowMs: number,
  ): Promise<QuotaDecision>;
  /**
   * Reserves room for `count` more pending messages under `max`. The count is loaded from
   * `countFromStore` when the shared copy is missing or older than the reconciliation interval.
   */
  reservePending(
    app: string,
    count: number,
    max: number,
    countFromStore: () => Promise<number>,
  ): Promise<QuotaDecision>;
}
