/**
 * Applies the versioned migrations and pins the cluster's slot count, in one transaction.
 *
 * Several nodes may start at once: the transaction first takes a transaction-scoped advisory lock
 * keyed by (constant, hash of the current schema), so they run one after the other; the second
 * finds every version recorded and only checks the slot count. Keying by schema lets tests migrate
 * many schemas of one database in parallel. DDL is transactional in Postgres, so a failed migration
 * leaves nothing behind.
 */
import { MIGRATIONS } from '../migrations';
import type { Queryable } from './db';

/** "HGLS" — the advisory lock class of Hourglass migrations. */
const MIGRATION_LOCK = 0x48474c53;

/** Must run inside a transaction (`BEGIN` already sent on `db`). */
export async function migrateInTransaction(db: Queryable, slotCount: number): Promise<void> {
  const schema = await db.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  if (!schema.rows[0]?.schema) {
    throw new Error('no schema to migrate into: the search_path names no existing schema');
  }
  await db.query('SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))', [MIGRATION_LOCK]);
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const applied = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
  const done = new Set(applied.rows.map((row) => row.version));
  for (const migration of MIGRATIONS) {
    if (done.has(migration.version)) continue;
    await db.query(migration.sql);
    await db.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
      migration.version,
      migration.name,
    ]);
  }

  // The slot count is fixed for the life of a cluster: every node hashes messages to slots with it.
  await db.query(
    `INSERT INTO cluster_meta (key, value) VALUES ('slot_count', $1) ON CONFLICT (key) DO NOTHING`,
    [String(slotCount)],
  );
  const stored = await db.query<{ value: string }>(
    `SELECT value FROM cluster_meta WHERE key = 'slot_count'`,
  );
  const existing = Number(stored.rows[0]?.value);
  if (existing !== slotCount) {
    throw new Error(
      `cluster was created with ${stored.rows[0]?.value} slots; this node is configured with ${slotCount}`,
    );
  }
  await db.query(
    'INSERT INTO slot_epochs (slot, epoch) SELECT s, 0 FROM generate_series(0, $1::int - 1) AS s ON CONFLICT (slot) DO NOTHING',
    [slotCount],
  );
}
