/**
 * PgAppStore: the {@link AppStore} on Postgres (apps, token hashes, topic grants, quotas, admin
 * statistics). It owns a small pool of its own, separate from the message store's, so admin and
 * auth reads never queue behind a burst of inserts. The schema comes from the shared migrations
 * (002_apps, 005_targets), applied by PgMessageStore.migrate.
 */
import type {
  AppAlerts,
  AppDeliveryConfig,
  AppDeliveryPatch,
  AppPatch,
  AppQuotas,
  AppRecord,
  AppRetentionPatch,
  AppStats,
  AppStore,
  DueBucket,
  NewApp,
  RetryStrategy,
  TokenGrant,
} from '@hourglass/core';
import { NO_QUOTAS } from '@hourglass/core';
import type { Pool } from 'pg';
import { createPool, guarded, inTransaction } from './pool';
import { STATE_CODES } from './rows';
import * as delivery from './sql/app-delivery';
import { selectCounts } from './sql/counters';
import { toAppRetention, updateAppRetention } from './sql/retention';
import type { AppRow } from './sql/apps';
import * as q from './sql/apps';

export interface PgAppStoreOptions {
  readonly connectionString: string;
  /** @default 4 */
  readonly poolSize?: number;
  /** @default 10000 */
  readonly statementTimeoutMs?: number;
  /** @default 5000 */
  readonly connectionTimeoutMs?: number;
  /** Time for the reads that list live tokens. @default Date.now */
  readonly now?: () => number;
  readonly onBackgroundError?: (err: unknown) => void;
}

function int8(value: string | number | null): number | null {
  return value === null ? null : Number(value);
}

function toRecord(row: AppRow): AppRecord {
  return {
    name: row.name,
    description: row.description,
    createdAtMs: Number(row.created_at),
    disabled: row.disabled,
    quotas: {
      ratePerSecond: row.rate_per_second,
      burst: row.burst,
      maxPending: int8(row.max_pending),
      maxPayloadBytes: row.max_payload_bytes,
      maxDelayMs: int8(row.max_delay_ms),
    },
    topics: row.topics,
    tokens: row.tokens.map((token) => ({
      createdAtMs: Number(token.createdAt),
      expiresAtMs: int8(token.expiresAt),
    })),
    delivery: toDeliveryConfig(row),
    // Only apps that override something carry it: the field is optional (see AppRecord).
    ...(row.retention_delivered_ms !== null ||
    row.retention_cancelled_ms !== null ||
    row.retention_failed_ms !== null
      ? { retention: toAppRetention(row) }
      : {}),
  };
}

/** The jsonb columns are written by {@link PgAppStore.setDeliveryConfig} only; read back field by field. */
function toDeliveryConfig(row: AppRow): AppDeliveryConfig {
  return {
    callbackHosts: row.callback_hosts,
    deadLetterTopic: row.dead_letter_topic,
    alerts: row.alerts === null ? null : toAlerts(row.alerts),
    retry: row.retry === null ? null : toRetry(row.retry),
    signingSecretCreatedAtMs: int8(row.signing_secret_created_at),
    previousSecretExpiresAtMs: int8(row.previous_secret_expires_at),
  };
}

function toAlerts(stored: AppAlerts): AppAlerts {
  return {
    afterAttempts: stored.afterAttempts,
    url: stored.url ?? null,
    topic: stored.topic ?? null,
  };
}

function toRetry(stored: RetryStrategy): RetryStrategy {
  return {
    strategy: stored.strategy,
    initialDelayMs: stored.initialDelayMs,
    maxDelayMs: stored.maxDelayMs,
    maxAttempts: stored.maxAttempts,
    jitter: stored.jitter,
  };
}

export class PgAppStore implements AppStore {
  private pool: Pool | null = null;
  private readonly now: () => number;

  constructor(private readonly options: PgAppStoreOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): Promise<void> {
    if (this.pool) return Promise.resolve();
    this.pool = createPool({
      connectionString: this.options.connectionString,
      max: this.options.poolSize ?? 4,
      connectionTimeoutMs: this.options.connectionTimeoutMs ?? 5_000,
      statementTimeoutMs: this.options.statementTimeoutMs ?? 10_000,
      applicationName: 'hourglass-apps',
      onBackgroundError: this.options.onBackgroundError ?? (() => undefined),
    });
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }

  async clusterId(): Promise<string> {
    const pool = this.requirePool();
    const id = await guarded(() => q.selectClusterId(pool));
    if (!id) throw new Error('no cluster id in cluster_meta (was the store migrated?)');
    return id;
  }

  async listApps(): Promise<AppRecord[]> {
    const pool = this.requirePool();
    return (await guarded(() => q.selectApps(pool, this.now()))).map(toRecord);
  }

  async getApp(name: string): Promise<AppRecord | null> {
    const pool = this.requirePool();
    const row = await guarded(() => q.selectApp(pool, name, this.now()));
    return row ? toRecord(row) : null;
  }

  async createApp(app: NewApp, tokenHash: string, nowMs: number): Promise<AppRecord | null> {
    const created = await inTransaction(this.requirePool(), async (client) => {
      if (!(await q.insertApp(client, app.name, app.description, app.quotas, nowMs))) return false;
      await q.insertTopics(client, app.name, app.topics, nowMs);
      await q.insertToken(client, app.name, tokenHash, 0, nowMs);
      return true;
    });
    return created ? this.getApp(app.name) : null;
  }

  async ensureConfigApp(
    app: { name: string; topics: readonly string[] },
    tokenHash: string,
    nowMs: number,
  ): Promise<void> {
    await inTransaction(this.requirePool(), async (client) => {
      await q.insertApp(client, app.name, 'bootstrapped from config', NO_QUOTAS, nowMs);
      await q.insertTopics(client, app.name, app.topics, nowMs);
      await q.deleteOtherConfigTokens(client, app.name, tokenHash);
      await q.insertToken(client, app.name, tokenHash, 1, nowMs);
    });
  }

  async updateApp(name: string, patch: AppPatch): Promise<AppRecord | null> {
    const pool = this.requirePool();
    const found = await guarded(() =>
      q.updateApp(pool, name, patch.description ?? null, patch.disabled ?? null),
    );
    return found ? this.getApp(name) : null;
  }

  async deleteApp(name: string): Promise<string[] | null> {
    return inTransaction(this.requirePool(), async (client) => {
      const hashes = await q.selectTokenHashes(client, name);
      return (await q.deleteApp(client, name)) ? hashes : null;
    });
  }

  async tokenHashes(name: string): Promise<string[]> {
    const pool = this.requirePool();
    return guarded(() => q.selectTokenHashes(pool, name));
  }

  async rotateToken(
    name: string,
    tokenHash: string,
    nowMs: number,
    graceMs: number,
  ): Promise<AppRecord | null> {
    const found = await inTransaction(this.requirePool(), async (client) => {
      if (!(await q.selectApp(client, name, nowMs))) return false;
      await q.expireTokens(client, name, nowMs, nowMs + Math.max(0, graceMs));
      await q.insertToken(client, name, tokenHash, 0, nowMs);
      return true;
    });
    return found ? this.getApp(name) : null;
  }

  async findByToken(tokenHash: string, nowMs: number): Promise<TokenGrant | null> {
    const pool = this.requirePool();
    const row = await guarded(() => q.selectAppByToken(pool, tokenHash, nowMs));
    return row ? { app: toRecord(row), tokenExpiresAtMs: int8(row.token_expires_at) } : null;
  }

  async grantTopic(name: string, topic: string): Promise<AppRecord | null> {
    const pool = this.requirePool();
    // The foreign key refuses a grant to a missing app; answer that as "no such app".
    try {
      await guarded(() => q.insertTopics(pool, name, [topic], this.now()));
    } catch (err) {
      if ((err as { code?: string }).code === '23503') return null;
      throw err;
    }
    return this.getApp(name);
  }

  async revokeTopic(name: string, topic: string): Promise<AppRecord | null> {
    const pool = this.requirePool();
    await guarded(() => q.deleteTopic(pool, name, topic));
    return this.getApp(name);
  }

  async setQuotas(name: string, quotas: AppQuotas): Promise<AppRecord | null> {
    const pool = this.requirePool();
    return (await guarded(() => q.updateQuotas(pool, name, quotas))) ? this.getApp(name) : null;
  }

  async countPending(name: string): Promise<number> {
    const pool = this.requirePool();
    return guarded(() => q.countPending(pool, name));
  }

  async setDeliveryConfig(name: string, patch: AppDeliveryPatch): Promise<AppRecord | null> {
    const pool = this.requirePool();
    const found = await guarded(() => delivery.updateDeliveryConfig(pool, name, patch));
    return found ? this.getApp(name) : null;
  }

  async setRetention(name: string, patch: AppRetentionPatch): Promise<AppRecord | null> {
    const pool = this.requirePool();
    const found = await guarded(() => updateAppRetention(pool, name, patch));
    return found ? this.getApp(name) : null;
  }

  async signingSecrets(
    name: string,
    nowMs: number,
    generate: () => string,
  ): Promise<string[] | null> {
    const pool = this.requirePool();
    let row = await guarded(() => delivery.selectSigningSecrets(pool, name));
    if (row && row.signing_secret === null) {
      // An app from before signing secrets (or a config app): the first node to ask stores one,
      // and every node, that one included, reads back whichever was stored first.
      const secret = generate();
      row = await guarded(async () => {
        await delivery.fillMissingSigningSecret(pool, name, secret, nowMs);
        return delivery.selectSigningSecrets(pool, name);
      });
    }
    if (!row) return null;
    if (row.signing_secret === null)
      throw new Error(`app "${name}" has no signing secret after storing one`);
    const secrets = [row.signing_secret];
    const previousUntil = int8(row.previous_secret_expires_at);
    if (row.previous_signing_secret !== null && previousUntil !== null && previousUntil > nowMs)
      secrets.push(row.previous_signing_secret);
    return secrets;
  }

  async rotateSigningSecret(
    name: string,
    secret: string,
    nowMs: number,
    graceMs: number,
  ): Promise<AppRecord | null> {
    const pool = this.requirePool();
    const found = await guarded(() =>
      delivery.rotateSigningSecret(pool, name, secret, nowMs, graceMs),
    );
    return found ? this.getApp(name) : null;
  }

  async stats(nowMs: number, buckets: readonly DueBucket[]): Promise<AppStats> {
    const pool = this.requirePool();
    const bounded = buckets.filter((bucket) => bucket.untilMs !== null);
    const bounds = bounded.map((bucket) => nowMs + (bucket.untilMs ?? 0));
    const [apps, byAppState, pending] = await guarded(() =>
      Promise.all([
        q.countApps(pool),
        // Maintained counters (008_retention, sql/counters.ts): never a count over `messages`.
        selectCounts(pool),
        q.countPendingByBucket(pool, bounds),
      ]),
    );
    const byState: Record<string, number> = Object.fromEntries(
      STATE_CODES.map((state) => [state, 0]),
    );
    const byApp = new Map<string, Record<string, number>>();
    for (const row of byAppState) {
      const state = STATE_CODES[row.state] ?? `state_${row.state}`;
      const n = Number(row.n);
      byState[state] = (byState[state] ?? 0) + n;
      let counts = byApp.get(row.app);
      if (!counts) byApp.set(row.app, (counts = {}));
      counts[state] = n;
    }
    // Bucket i holds rows due before bound i (and at or after bound i-1); the last one is open-ended.
    const labels = [
      ...bounded.map((bucket) => bucket.label),
      buckets.find((bucket) => bucket.untilMs === null)?.label ?? 'later',
    ];
    const pendingByApp = new Map<string, Record<string, number>>();
    for (const row of pending) {
      let counts = pendingByApp.get(row.app);
      if (!counts)
        pendingByApp.set(row.app, (counts = Object.fromEntries(labels.map((label) => [label, 0]))));
      const label = labels[row.bucket] ?? labels[labels.length - 1]!;
      counts[label] = (counts[label] ?? 0) + Number(row.n);
    }
    return {
      apps,
      byState,
      byApp: [...byApp].map(([app, counts]) => ({ app, byState: counts })),
      pendingByApp: [...pendingByApp].map(([app, counts]) => ({ app, buckets: counts })),
    };
  }

  private requirePool(): Pool {
    if (!this.pool) throw new Error('PgAppStore is not started');
    return this.pool;
  }
}
