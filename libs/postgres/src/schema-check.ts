/**
 * Checks that a schema is one the migrations of this version can use, before and after
 * {@link PgMessageStore.migrate}, so a node facing a schema it cannot work with stops with an error
 * that says what is wrong and what to do, instead of failing later on some query ("no cluster id
 * in cluster_meta", "relation apps already exists").
 *
 * Migrations run in one transaction, so Hourglass never leaves a schema half migrated itself. A
 * schema that does not match the versions its `schema_migrations` records was made by something
 * else: an earlier, unreleased text of a migration (a development database), a restore of part of
 * a dump, or a change by hand. Hourglass does not repair such a schema; the error says so and
 * shows how to reset a development database.
 *
 * What is checked:
 * - before migrating: `schema_migrations` records no version this node does not know (a newer
 *   node migrated the schema) and no gap; no table that a migration still to apply creates exists
 *   already; and everything the recorded versions create exists (see {@link EXPECTED}).
 * - after migrating: everything the recorded versions create exists.
 *
 * The check takes the migrations' advisory lock (in a transaction of its own), so a node that
 * checks while another migrates the same schema waits for it and sees its result.
 */
import { Client } from 'pg';
import { MIGRATIONS } from './migrations';
import { toStoreError } from './errors';

/** The advisory lock class of Hourglass migrations ("HGLS"), as in sql/migrate.ts. */
const MIGRATION_LOCK = 0x48474c53;

interface Expected {
  /** Tables the migration creates, which must exist once it is recorded. */
  readonly tables: readonly string[];
  /** `cluster_meta` keys that must exist once it is recorded. */
  readonly meta: readonly string[];
}

/**
 * What must exist once a version is recorded (and still exist after every later one: a migration
 * that drops or renames one of these must update this table). Versions not listed are only
 * checked for being known.
 */
const EXPECTED: ReadonlyMap<number, Expected> = new Map([
  [1, { tables: ['cluster_meta', 'slot_epochs', 'messages', 'wheel_hints'], meta: ['slot_count'] }],
  [2, { tables: ['apps', 'app_tokens', 'app_topics'], meta: ['cluster_id'] }],
  [9, { tables: ['schedules'], meta: [] }],
  [8, { tables: ['message_counts', 'message_count_deltas', 'messages_archive'], meta: [] }],
]);

/** The schema cannot be migrated or used by this version of Hourglass; the message says what to do. */
export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

/** The schema does not match the migrations it records (see the module comment). */
export class SchemaMismatchError extends SchemaError {
  constructor(
    readonly schema: string,
    readonly problems: readonly string[],
    location: string,
  ) {
    const quoted = `"${schema.replace(/"/g, '""')}"`;
    super(
      [
        `Postgres schema ${quoted} at ${location} does not match the migrations it records, so this node cannot use it:`,
        ...problems.map((problem) => `  - ${problem}`),
        'It was probably made by an earlier or unreleased version of a migration, or changed by hand; Hourglass does not repair a schema.',
        'Restore it from a backup (or bring it to the recorded versions by hand). If its data can be thrown away (a development database), reset it and start again:',
        `  psql '${location}' -c 'DROP SCHEMA ${quoted} CASCADE; CREATE SCHEMA ${quoted}'`,
      ].join('\n'),
    );
    this.name = 'SchemaMismatchError';
  }
}

/** The connection string without its password, for messages. */
export function redactedUrl(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(the configured postgres.url)';
  }
}

export interface CheckSchemaOptions {
  /** @default 5000 */
  readonly connectionTimeoutMs?: number;
}

/**
 * Throws {@link SchemaMismatchError} when the connection's current schema cannot be migrated
 * (`'before-migrate'`) or used (`'after-migrate'`) by this version; a Postgres that cannot be
 * reached gives DependencyUnavailableError, like migrate.
 */
export async function checkSchema(
  connectionString: string,
  phase: 'before-migrate' | 'after-migrate',
  options: CheckSchemaOptions = {},
): Promise<void> {
  const client = new Client({
    connectionString,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    application_name: 'hourglass-schema-check',
  });
  client.on('error', () => undefined); // surfaced through the failing query
  let problems: string[];
  let schema: string;
  try {
    await client.connect();
    await client.query('BEGIN');
    try {
      const current = await client.query<{ schema: string | null }>(
        'SELECT current_schema() AS schema',
      );
      schema = current.rows[0]?.schema ?? '';
      // No schema at all is reported by migrate itself.
      if (!schema) return;
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))', [
        MIGRATION_LOCK,
      ]);
      problems = await findProblems(client, phase);
    } finally {
      await client.query('COMMIT').catch(() => undefined);
    }
  } catch (err) {
    throw toStoreError(err);
  } finally {
    await client.end().catch(() => undefined);
  }
  if (problems.length > 0)
    throw new SchemaMismatchError(schema, problems, redactedUrl(connectionString));
}

async function findProblems(
  client: Client,
  phase: 'before-migrate' | 'after-migrate',
): Promise<string[]> {
  const tableRows = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c
       WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
         AND c.relkind IN ('r', 'p')`,
  );
  const tables = new Set(tableRows.rows.map((row) => row.name));
  const known = new Map(MIGRATIONS.map((migration) => [migration.version, migration.name]));
  const problems: string[] = [];

  let recorded: { version: number; name: string }[] = [];
  if (tables.has('schema_migrations')) {
    recorded = (
      await client.query<{ version: number; name: string }>(
        'SELECT version, name FROM schema_migrations ORDER BY version',
      )
    ).rows;
  }
  const versions = new Set(recorded.map((row) => row.version));

  const unknown = recorded.filter((row) => !known.has(row.version));
  if (unknown.length > 0) {
    const newest = Math.max(...known.keys());
    // Not a broken schema but a newer one: say so on its own, with its own remedy.
    throw new SchemaError(
      `Postgres schema "${await currentSchema(client)}" was migrated by a newer version of Hourglass: ` +
        `it records ${unknown.map((row) => `${row.version} (${row.name})`).join(', ')}, and this node knows migrations up to ${newest}. ` +
        'Run this node at the same (or a newer) version as the rest of the cluster.',
    );
  }
  for (const row of recorded) {
    const name = known.get(row.version);
    if (name !== row.name)
      problems.push(
        `schema_migrations records version ${row.version} as ${row.name}; this version of Hourglass calls it ${name}`,
      );
  }
  const highest = recorded.length > 0 ? Math.max(...versions) : 0;
  for (const migration of MIGRATIONS) {
    if (migration.version < highest && !versions.has(migration.version))
      problems.push(
        `schema_migrations records version ${highest} but not ${migration.version} (${migration.name})`,
      );
  }

  if (phase === 'before-migrate') {
    for (const migration of MIGRATIONS) {
      if (versions.has(migration.version)) continue;
      const present = (EXPECTED.get(migration.version)?.tables ?? []).filter((t) => tables.has(t));
      if (present.length > 0)
        problems.push(
          `${migration.name} is not recorded in schema_migrations, yet ${plural(present, 'table')} it creates already ${present.length === 1 ? 'exists' : 'exist'}: ${present.join(', ')}`,
        );
    }
  }

  const meta = new Set<string>();
  if (tables.has('cluster_meta')) {
    const rows = await client.query<{ key: string }>('SELECT key FROM cluster_meta');
    for (const row of rows.rows) meta.add(row.key);
  }
  for (const row of recorded) {
    const expected = EXPECTED.get(row.version);
    if (!expected) continue;
    const missingTables = expected.tables.filter((t) => !tables.has(t));
    if (missingTables.length > 0)
      problems.push(
        `schema_migrations records ${row.name}, but ${plural(missingTables, 'table')} it creates ${missingTables.length === 1 ? 'is' : 'are'} missing: ${missingTables.join(', ')}`,
      );
    if (!tables.has('cluster_meta')) continue;
    const missingMeta = expected.meta.filter((key) => !meta.has(key));
    if (missingMeta.length > 0)
      problems.push(
        `schema_migrations records ${row.name}, but cluster_meta has no ${missingMeta.join(', ')} row`,
      );
  }
  return problems;
}

async function currentSchema(client: Client): Promise<string> {
  const result = await client.query<{ schema: string }>('SELECT current_schema() AS schema');
  return result.rows[0]?.schema ?? '';
}

function plural(items: readonly unknown[], word: string): string {
  return items.length === 1 ? `the ${word}` : `the ${word}s`;
}
