/**
 * checkSchema against a real Postgres: schemas a node must refuse before migrating (or using)
 * them, with an error that says what is wrong, and the concurrent first start of several nodes,
 * which it must not refuse.
 */
import assert from 'node:assert/strict';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { Client } from 'pg';
import {
  checkSchema,
  MIGRATIONS,
  PgMessageStore,
  redactedUrl,
  SchemaError,
  SchemaMismatchError,
} from '../../src';

const SLOTS = 16;

async function sql(db: TestDatabase, text: string): Promise<void> {
  const client = new Client({ connectionString: db.connectionString });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** What a node does at start (apps/node/src/node.ts). */
async function startLikeANode(db: TestDatabase): Promise<void> {
  await checkSchema(db.connectionString, 'before-migrate');
  await new PgMessageStore({ connectionString: db.connectionString }).migrate(SLOTS);
  await checkSchema(db.connectionString, 'after-migrate');
}

describe('checkSchema (postgres)', () => {
  const dbs: TestDatabase[] = [];
  const fresh = async (): Promise<TestDatabase> => {
    const db = await createTestDatabase();
    dbs.push(db);
    return db;
  };

  after(async () => {
    await Promise.all(dbs.map((db) => db.drop()));
  });

  it('accepts an empty schema, and the schema its migrations made, also when nodes start together', async () => {
    const db = await fresh();
    await Promise.all([startLikeANode(db), startLikeANode(db), startLikeANode(db)]);
    await startLikeANode(db);
  });

  it('refuses tables that a migration not yet recorded would create', async () => {
    const db = await fresh();
    await sql(db, 'CREATE TABLE messages (id text PRIMARY KEY)');
    await assert.rejects(checkSchema(db.connectionString, 'before-migrate'), (error) => {
      assert.ok(error instanceof SchemaMismatchError, String(error));
      assert.match(
        error.message,
        /001_init is not recorded in schema_migrations, yet the table it creates already exists: messages/,
      );
      return true;
    });
  });

  it('refuses a recorded version whose tables or cluster_meta rows are missing', async () => {
    const db = await fresh();
    await startLikeANode(db);
    await sql(db, `DROP TABLE app_topics; DELETE FROM cluster_meta WHERE key = 'cluster_id'`);
    for (const phase of ['before-migrate', 'after-migrate'] as const) {
      await assert.rejects(checkSchema(db.connectionString, phase), (error) => {
        assert.ok(error instanceof SchemaMismatchError, String(error));
        assert.deepEqual(error.problems, [
          'schema_migrations records 002_apps, but the table it creates is missing: app_topics',
          'schema_migrations records 002_apps, but cluster_meta has no cluster_id row',
        ]);
        assert.match(error.message, new RegExp(`DROP SCHEMA "${error.schema}" CASCADE`));
        return true;
      });
    }
  });

  it('refuses a schema migrated by a newer version, saying so', async () => {
    const db = await fresh();
    await startLikeANode(db);
    const newer = Math.max(...MIGRATIONS.map((m) => m.version)) + 100;
    await sql(
      db,
      `INSERT INTO schema_migrations (version, name) VALUES (${newer}, 'from_the_future')`,
    );
    await assert.rejects(checkSchema(db.connectionString, 'before-migrate'), (error) => {
      assert.ok(error instanceof SchemaError && !(error instanceof SchemaMismatchError));
      assert.match(error.message, /migrated by a newer version of Hourglass/);
      assert.match(error.message, new RegExp(`${newer} \\(from_the_future\\)`));
      return true;
    });
  });

  it('keeps passwords out of its messages', () => {
    assert.equal(
      redactedUrl('postgres://hg:secret@db.example:5432/hourglass'),
      'postgres://hg:***@db.example:5432/hourglass',
    );
  });
});
