/**
 * Apps, tokens, topic grants and the admin statistics. One function per query; PgAppStore
 * sequences them. Token hashes are the only form of a token this file ever sees.
 */
import type { AppQuotas } from '@hourglass/core';
import type { DeliveryColumns } from './app-delivery';
import { deliveryColumns } from './app-delivery';
import type { Queryable } from './db';

/**
 * An `apps` row joined with its topics and live tokens (int8 arrives as a string), with its
 * delivery settings but never its signing secrets.
 */
export interface AppRow extends DeliveryColumns {
  name: string;
  description: string;
  created_at: string;
  disabled: boolean;
  rate_per_second: number | null;
  burst: number | null;
  max_pending: string | null;
  max_payload_bytes: number | null;
  max_delay_ms: string | null;
  /** 008_retention: the app's retention overrides. */
  retention_delivered_ms: string | null;
  retention_cancelled_ms: string | null;
  retention_failed_ms: string | null;
  topics: string[];
  tokens: Array<{ createdAt: number; expiresAt: number | null }>;
}

/**
 * The app columns plus its topics and tokens not yet expired at `$now` (the parameter number is
 * spliced in), in one round trip per read.
 */
function appSelect(nowParam: string): string {
  return `
SELECT a.name, a.description, a.created_at, a.disabled, a.rate_per_second, a.burst, a.max_pending,
       a.max_payload_bytes, a.max_delay_ms, ${deliveryColumns(nowParam)},
       a.retention_delivered_ms, a.retention_cancelled_ms, a.retention_failed_ms,
       COALESCE((SELECT array_agg(t.topic ORDER BY t.topic) FROM app_topics t WHERE t.app = a.name), '{}') AS topics,
       COALESCE((SELECT json_agg(json_build_object('createdAt', k.created_at, 'expiresAt', k.expires_at)
                                 ORDER BY k.created_at)
                 FROM app_tokens k
                 WHERE k.app = a.name AND (k.expires_at IS NULL OR k.expires_at > ${nowParam})), '[]') AS tokens
FROM apps a`;
}

export async function selectApps(db: Queryable, nowMs: number): Promise<AppRow[]> {
  return (await db.query<AppRow>(`${appSelect('$1')} ORDER BY a.name`, [nowMs])).rows;
}

export async function selectApp(
  db: Queryable,
  name: string,
  nowMs: number,
): Promise<AppRow | null> {
  return (
    (await db.query<AppRow>(`${appSelect('$2')} WHERE a.name = $1`, [name, nowMs])).rows[0] ?? null
  );
}

/** The app holding an unexpired token with this hash, and the token's expiry. */
export async function selectAppByToken(
  db: Queryable,
  tokenHash: string,
  nowMs: number,
): Promise<(AppRow & { token_expires_at: string | null }) | null> {
  const result = await db.query<AppRow & { token_expires_at: string | null }>(
    `SELECT k.expires_at AS token_expires_at, x.*
     FROM app_tokens k
     JOIN LATERAL (${appSelect('$2')} WHERE a.name = k.app) x ON true
     WHERE k.token_hash = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)`,
    [tokenHash, nowMs],
  );
  return result.rows[0] ?? null;
}

/** Returns whether the app was created (false: the name is taken). */
export async function insertApp(
  db: Queryable,
  name: string,
  description: string,
  quotas: AppQuotas,
  nowMs: number,
): Promise<boolean> {
  const result = await db.query(
    `INSERT INTO apps (name, description, created_at, rate_per_second, burst, max_pending, max_payload_bytes, max_delay_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING`,
    [name, description, nowMs, ...quotaValues(quotas)],
  );
  return result.rowCount === 1;
}

function quotaValues(quotas: AppQuotas): Array<number | null> {
  return [
    quotas.ratePerSecond,
    quotas.burst,
    quotas.maxPending,
    quotas.maxPayloadBytes,
    quotas.maxDelayMs,
  ];
}

export async function insertTopics(
  db: Queryable,
  app: string,
  topics: readonly string[],
  nowMs: number,
): Promise<void> {
  if (topics.length === 0) return;
  await db.query(
    `INSERT INTO app_topics (app, topic, granted_at) SELECT $1, unnest($2::text[]), $3 ON CONFLICT DO NOTHING`,
    [app, [...topics], nowMs],
  );
}

export async function deleteTopic(db: Queryable, app: string, topic: string): Promise<void> {
  await db.query('DELETE FROM app_topics WHERE app = $1 AND topic = $2', [app, topic]);
}

/** source: 0 issued by the admin API, 1 bootstrapped from config. */
export async function insertToken(
  db: Queryable,
  app: string,
  tokenHash: string,
  source: 0 | 1,
  nowMs: number,
): Promise<void> {
  await db.query(
    `INSERT INTO app_tokens (token_hash, app, source, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (token_hash) DO NOTHING`,
    [tokenHash, app, source, nowMs],
  );
}

/** Drops the app's config tokens other than `keepHash` (the config token changed). */
export async function deleteOtherConfigTokens(
  db: Queryable,
  app: string,
  keepHash: string,
): Promise<void> {
  await db.query('DELETE FROM app_tokens WHERE app = $1 AND source = 1 AND token_hash <> $2', [
    app,
    keepHash,
  ]);
}

/**
 * Rotation, before inserting the new token: tokens already expired are removed, the others expire
 * at `expiresAtMs` unless they already expire sooner (a second rotation never extends a grace).
 */
export async function expireTokens(
  db: Queryable,
  app: string,
  nowMs: number,
  expiresAtMs: number,
): Promise<void> {
  await db.query('DELETE FROM app_tokens WHERE app = $1 AND expires_at <= $2', [app, nowMs]);
  await db.query(
    `UPDATE app_tokens SET expires_at = $2
     WHERE app = $1 AND (expires_at IS NULL OR expires_at > $2)`,
    [app, expiresAtMs],
  );
}

export async function selectTokenHashes(db: Queryable, app: string): Promise<string[]> {
  const result = await db.query<{ token_hash: string }>(
    'SELECT token_hash FROM app_tokens WHERE app = $1',
    [app],
  );
  return result.rows.map((row) => row.token_hash);
}

/** Returns whether the app existed. */
export async function updateApp(
  db: Queryable,
  name: string,
  description: string | null,
  disabled: boolean | null,
): Promise<boolean> {
  const result = await db.query(
    `UPDATE apps SET description = COALESCE($2, description), disabled = COALESCE($3, disabled) WHERE name = $1`,
    [name, description, disabled],
  );
  return result.rowCount === 1;
}

export async function updateQuotas(
  db: Queryable,
  name: string,
  quotas: AppQuotas,
): Promise<boolean> {
  const result = await db.query(
    `UPDATE apps SET rate_per_second = $2, burst = $3, max_pending = $4, max_payload_bytes = $5, max_delay_ms = $6
     WHERE name = $1`,
    [name, ...quotaValues(quotas)],
  );
  return result.rowCount === 1;
}

/** Tokens and grants go with the app (ON DELETE CASCADE); its messages stay and are still delivered. */
export async function deleteApp(db: Queryable, name: string): Promise<boolean> {
  const result = await db.query('DELETE FROM apps WHERE name = $1', [name]);
  return result.rowCount === 1;
}

/**
 * Served by `messages_app_pending_idx` (index-only once the visibility map is fresh). The no-op
 * `app > ''` (app names are never empty) is what lets the planner use that index; see 002_apps.
 */
export async function countPending(db: Queryable, app: string): Promise<number> {
  const result = await db.query<{ n: string }>(
    "SELECT count(*) AS n FROM messages WHERE app = $1 AND app > '' AND state IN (0, 1)",
    [app],
  );
  return Number(result.rows[0]?.n ?? 0);
}

export async function countApps(db: Queryable): Promise<number> {
  const result = await db.query<{ n: string }>('SELECT count(*) AS n FROM apps');
  return Number(result.rows[0]?.n ?? 0);
}

/**
 * Pending messages per app and due-time bucket. `bounds` are ascending absolute instants; a row's
 * bucket is the number of bounds at or before its due time (0: due before the first bound).
 * Reads only `messages_app_pending_idx`.
 */
export const PENDING_BY_BUCKET = `SELECT app, bucket, count(*) AS n FROM (
         SELECT app, (SELECT count(*) FROM unnest($1::bigint[]) AS b(at) WHERE b.at <= m.deliver_at)::int AS bucket
         FROM messages m WHERE state IN (0, 1) AND app > ''
       ) x GROUP BY app, bucket ORDER BY app, bucket`;

export async function countPendingByBucket(
  db: Queryable,
  bounds: readonly number[],
): Promise<Array<{ app: string; bucket: number; n: string }>> {
  return (
    await db.query<{ app: string; bucket: number; n: string }>(PENDING_BY_BUCKET, [[...bounds]])
  ).rows;
}

export async function selectClusterId(db: Queryable): Promise<string | null> {
  const result = await db.query<{ value: string }>(
    `SELECT value FROM cluster_meta WHERE key = 'cluster_id'`,
  );
  return result.rows[0]?.value ?? null;
}
