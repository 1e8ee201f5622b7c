/**
 * The apps' delivery settings and signing secrets (005_targets). One function per query; PgAppStore
 * sequences them. Secrets are read only by {@link selectSigningSecrets}: the app reads of
 * sql/apps.ts never select them, so no AppRecord (and no cache entry made from one) holds a secret.
 */
import type { AppAlerts, AppDeliveryPatch, RetryStrategy } from '@hourglass/core';
import type { Queryable } from './db';

/** The delivery columns as the app reads of sql/apps.ts select them (int8 arrives as a string). */
export interface DeliveryColumns {
  callback_hosts: string[] | null;
  dead_letter_topic: string | null;
  alerts: AppAlerts | null;
  retry: RetryStrategy | null;
  signing_secret_created_at: string | null;
  previous_secret_expires_at: string | null;
}

/**
 * For the select list of an `apps a` read at `$now` (the parameter is spliced in). A previous
 * secret's end that has passed reads as null: there is no previous secret any more.
 */
export function deliveryColumns(nowParam: string): string {
  return `a.callback_hosts, a.dead_letter_topic, a.alerts, a.retry, a.signing_secret_created_at,
       CASE WHEN a.previous_secret_expires_at > ${nowParam} THEN a.previous_secret_expires_at END
         AS previous_secret_expires_at`;
}

/**
 * Applies a patch: each field given is set (null clears it), the others stay. Returns whether the
 * app exists.
 */
export async function updateDeliveryConfig(
  db: Queryable,
  name: string,
  patch: AppDeliveryPatch,
): Promise<boolean> {
  const result = await db.query(
    `UPDATE apps SET
       callback_hosts = CASE WHEN $2 THEN $3::text[] ELSE callback_hosts END,
       dead_letter_topic = CASE WHEN $4 THEN $5::text ELSE dead_letter_topic END,
       alerts = CASE WHEN $6 THEN $7::jsonb ELSE alerts END,
       retry = CASE WHEN $8 THEN $9::jsonb ELSE retry END
     WHERE name = $1`,
    [
      name,
      patch.callbackHosts !== undefined,
      patch.callbackHosts ? [...patch.callbackHosts] : null,
      patch.deadLetterTopic !== undefined,
      patch.deadLetterTopic ?? null,
      patch.alerts !== undefined,
      patch.alerts ? JSON.stringify(patch.alerts) : null,
      patch.retry !== undefined,
      patch.retry ? JSON.stringify(patch.retry) : null,
    ],
  );
  return result.rowCount === 1;
}

export interface SecretRow {
  signing_secret: string | null;
  previous_signing_secret: string | null;
  previous_secret_expires_at: string | null;
}

export async function selectSigningSecrets(db: Queryable, name: string): Promise<SecretRow | null> {
  const result = await db.query<SecretRow>(
    `SELECT signing_secret, previous_signing_secret, previous_secret_expires_at FROM apps WHERE name = $1`,
    [name],
  );
  return result.rows[0] ?? null;
}

/**
 * Stores `secret` only if the app has none yet. Two nodes racing both run this; the second one's
 * UPDATE waits for the first's row lock, re-checks `signing_secret IS NULL` on the committed row
 * and changes nothing, so both read back the first one's secret.
 */
export async function fillMissingSigningSecret(
  db: Queryable,
  name: string,
  secret: string,
  nowMs: number,
): Promise<void> {
  await db.query(
    `UPDATE apps SET signing_secret = $2, signing_secret_created_at = $3
     WHERE name = $1 AND signing_secret IS NULL`,
    [name, secret, nowMs],
  );
}

/**
 * Rotation: the current secret becomes the previous one until `nowMs + graceMs` (with no grace, or
 * no current secret, there is no previous one), and `secret` the current one. SET expressions read
 * the row as it was before the UPDATE. Returns whether the app exists.
 */
export async function rotateSigningSecret(
  db: Queryable,
  name: string,
  secret: string,
  nowMs: number,
  graceMs: number,
): Promise<boolean> {
  const result = await db.query(
    `UPDATE apps SET
       previous_signing_secret = CASE WHEN $4::bigint > 0 THEN signing_secret END,
       previous_secret_expires_at = CASE WHEN $4::bigint > 0 AND signing_secret IS NOT NULL
                                         THEN $3::bigint + $4::bigint END,
       signing_secret = $2,
       signing_secret_created_at = $3
     WHERE name = $1`,
    [name, secret, nowMs, Math.max(0, Math.floor(graceMs))],
  );
  return result.rowCount === 1;
}
