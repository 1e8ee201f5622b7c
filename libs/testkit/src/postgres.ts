/**
 * A Postgres schema per test file: cheaper than a database per file (no template copy, no
 * connection-slot churn), and just as isolated for code that only uses unqualified names.
 */
import pg from 'pg';
import { randomId } from './names';
import { serviceUnreachable, serviceUrls } from './services';

/** A schema of its own in the `hourglass` database; see {@link createTestDatabase}. */
export interface TestDatabase {
  /**
   * Connects to the `hourglass` database with `search_path` set to {@link schema}, so
   * unqualified table names (migrations included) land in the schema.
   */
  readonly connectionString: string;
  /** The schema's name, `t_` and 12 hex characters. */
  readonly schema: string;
  /** Drops the schema and everything in it. Safe to call more than once. */
  drop(): Promise<void>;
}

export interface CreateTestDatabaseOptions {
  /** The database to create the schema in. @default serviceUrls().postgres */
  readonly baseUrl?: string;
}

/**
 * Creates a fresh, empty schema `t_<random>` and returns a connection string that selects it.
 * Call it in `before` and `drop()` in `after`; a schema left behind by a crashed run is
 * harmless (nothing else looks at `t_*` schemas).
 */
export async function createTestDatabase(
  options: CreateTestDatabaseOptions = {},
): Promise<TestDatabase> {
  const baseUrl = options.baseUrl ?? serviceUrls().postgres;
  const schema = `t_${randomId()}`;
  await runAdmin(baseUrl, `CREATE SCHEMA ${schema}`);
  // libpq's `options` parameter, which pg passes to the server as startup options. The schema
  // name is [a-z0-9_] only, so it needs no quoting inside the option either.
  const separator = baseUrl.includes('?') ? '&' : '?';
  const connectionString = `${baseUrl}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  let dropped: Promise<void> | undefined;
  return {
    connectionString,
    schema,
    drop: () => (dropped ??= runAdmin(baseUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE`)),
  };
}

async function runAdmin(connectionString: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  try {
    await client.connect();
  } catch (error) {
    throw serviceUnreachable('Postgres', connectionString, error);
  }
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
