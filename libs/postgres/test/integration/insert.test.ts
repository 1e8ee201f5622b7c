/**
 * The accept path's SQL details against a real Postgres: binary array parameters
 * (src/sql/binary-arrays.ts) and the insert's "new ids first, ON CONFLICT on a duplicate" rounds
 * (src/sql/insert.ts). The behaviour of insertBatch as a whole is in store.test.ts.
 */
import assert from 'node:assert/strict';
import type { NewMessage } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import type { QueryResult, QueryResultRow } from 'pg';
import { Pool } from 'pg';
import { PgMessageStore } from '../../src';
import { byteaArray, integerArray, textArray } from '../../src/sql/binary-arrays';
import type { NamedQuery, Queryable } from '../../src/sql/db';
import { insertMessages } from '../../src/sql/insert';

const SLOTS = 16;
const T0 = 1_900_000_000_000;

let counter = 0;
function message(overrides: Partial<NewMessage> = {}): NewMessage {
  counter += 1;
  return {
    app: 'app1',
    id: `m${String(counter).padStart(6, '0')}`,
    slot: 3,
    topic: 'orders',
    key: null,
    payload: Buffer.from(JSON.stringify({ n: counter })),
    payloadEncoding: 'json',
    headers: {},
    deliverAtMs: T0,
    fingerprint: `fp-${counter}`,
    ...overrides,
  };
}

describe('insert SQL (postgres)', () => {
  let db: TestDatabase;
  let pool: Pool;
  let store: PgMessageStore;

  before(async () => {
    db = await createTestDatabase();
    store = new PgMessageStore({ connectionString: db.connectionString });
    await store.migrate(SLOTS);
    await store.start();
    pool = new Pool({ connectionString: db.connectionString, max: 4 });
  });

  after(async () => {
    await pool?.end();
    await store?.stop();
    await db?.drop();
  });

  describe('binary array parameters', () => {
    it('round-trip text, with NULLs, quotes, braces, backslashes and any Unicode', async () => {
      const values = [
        'plain',
        '',
        null,
        'a,b',
        '{x}',
        '"quoted"',
        'back\\slash',
        'NULL',
        'tab\tnew\nline',
        'é ü ß 漢字 🎉',
        'x'.repeat(70_000), // grows the writer's buffer
      ];
      const { rows } = await pool.query<{ a: (string | null)[]; n: number }>(
        'SELECT $1::text[] AS a, cardinality($1::text[]) AS n',
        [textArray(values)],
      );
      assert.deepEqual(rows[0], { a: values, n: values.length });
    });

    it('round-trip ASCII text (copied byte by byte) and fall back at the first non-ASCII', async () => {
      // Every ASCII character but NUL (which text cannot hold), in strings of many lengths.
      const ascii = Array.from({ length: 300 }, (_, n) =>
        Array.from({ length: n }, (_, k) => String.fromCharCode(1 + (k % 127))).join(''),
      );
      for (const values of [
        ascii,
        [...ascii, null, ''],
        [...ascii, 'ÿ'],
        ['a', '\u007f', 'b', '\u0080'],
        [null, null],
      ]) {
        const { rows } = await pool.query<{ a: string[] }>('SELECT $1::text[] AS a', [
          textArray(values),
        ]);
        assert.deepEqual(rows[0]?.a, values);
      }
    });

    it('round-trip bytea and integers at their limits, and empty arrays', async () => {
      const bytes = [Buffer.alloc(0), Buffer.from([0, 1, 254, 255]), Buffer.alloc(3000, 7)];
      const int8 = [
        0,
        1,
        -1,
        2 ** 32,
        -(2 ** 32) - 1,
        Number.MAX_SAFE_INTEGER,
        -Number.MAX_SAFE_INTEGER,
      ];
      const { rows } = await pool.query(
        `SELECT $1::bytea[] AS b, $2::int2[] AS s, $3::int4[] AS i, $4::int8[]::text[] AS l,
                $5::text[] AS et, $6::int8[] AS el, $7::bytea[] AS eb`,
        [
          byteaArray(bytes),
          integerArray('int2', [0, -32_768, 32_767]),
          integerArray('int4', [0, -2_147_483_648, 2_147_483_647]),
          integerArray('int8', int8),
          textArray([]),
          integerArray('int8', []),
          byteaArray([]),
        ],
      );
      assert.deepEqual(rows[0], {
        b: bytes,
        s: [0, -32_768, 32_767],
        i: [0, -2_147_483_648, 2_147_483_647],
        l: int8.map(String),
        et: [],
        el: [],
        eb: [],
      });
    });

    it('refuses values outside the element type instead of wrapping them', () => {
      assert.throws(() => integerArray('int2', [32_768]), RangeError);
      assert.throws(() => integerArray('int4', [2 ** 31]), RangeError);
      assert.throws(() => integerArray('int8', [2 ** 53]), RangeError);
      assert.throws(() => integerArray('int4', [1.5]), RangeError);
    });
  });

  describe('new ids first, ON CONFLICT on a duplicate', () => {
    /** Counts the statements insertMessages sends. */
    function counting(): Queryable & { statements: number } {
      const db = {
        statements: 0,
        query<R extends QueryResultRow>(
          text: string | NamedQuery,
          values?: unknown[],
        ): Promise<QueryResult<R>> {
          db.statements += 1;
          return typeof text === 'string' ? pool.query<R>(text, values) : pool.query<R>(text);
        },
      };
      return db;
    }
    const owned = new Map([[3, 1]]);

    before(async () => {
      await store.acquireSlots([3], 0); // epoch 1
    });

    it('inserts a batch of new ids in one statement', async () => {
      const db = counting();
      const batch = [message(), message(), message()];
      const inserted = await insertMessages(db, batch, owned, T0, 'channel');
      assert.equal(db.statements, 1);
      assert.equal(inserted.seqs.filter((seq) => seq !== null).length, 3);
      assert.equal(new Set(inserted.seqs).size, 3);
      assert.deepEqual(inserted.wheelable, [true, true, true]);
      const stored = await pool.query<{ seq: string; created_at: string }>(
        'SELECT seq::text, created_at::text FROM messages WHERE id = ANY($1) ORDER BY id',
        [batch.map((m) => m.id)],
      );
      assert.deepEqual(
        stored.rows.map((row) => Number(row.seq)),
        inserted.seqs,
      );
      stored.rows.forEach((row, index) =>
        assert.equal(inserted.createdAtMs(index), Number(row.created_at)),
      );
    });

    it('falls back to ON CONFLICT when an id exists, leaving nothing of the first attempt', async () => {
      const [first, second] = [message(), message()];
      const old = message();
      await store.insertBatch([old], { ownedEpochs: new Map(), hintBeforeMs: T0 + 1 });
      // Slot 5 is not owned and the messages are near-due: every created row gets a hint. The
      // existing id is last in key order, so the first attempt inserted both others (and their
      // hints) before failing.
      const db = counting();
      const batch = [first, old, second].map((m) => ({ ...m, slot: 5 }));
      const inserted = await insertMessages(db, batch, owned, T0 + 1, 'channel');
      assert.equal(db.statements, 2);
      assert.deepEqual(
        inserted.seqs.map((seq) => seq !== null),
        [true, false, true],
      );
      assert.deepEqual(inserted.wheelable, [false, false, false]);
      const hints = await pool.query<{ seq: string }>(
        'SELECT seq::text FROM wheel_hints WHERE slot = 5',
      );
      const numeric = (seqs: (string | number | null | undefined)[]): number[] =>
        seqs.map(Number).sort((a, b) => a - b);
      assert.deepEqual(
        numeric(hints.rows.map((row) => row.seq)),
        numeric([inserted.seqs[0], inserted.seqs[2]]),
      );
      const stored = await pool.query<{ id: string }>(
        'SELECT id FROM messages WHERE id = ANY($1) ORDER BY id',
        [batch.map((m) => m.id)],
      );
      assert.equal(stored.rows.length, 3);
    });

    it('answers a re-sent batch with existing and conflict outcomes', async () => {
      const batch = [message(), message(), message()];
      await store.insertBatch(batch, { ownedEpochs: owned, hintBeforeMs: 0 });
      const outcomes = await store.insertBatch(
        [batch[0]!, { ...batch[1]!, fingerprint: 'changed' }, batch[2]!, message()],
        { ownedEpochs: owned, hintBeforeMs: 0 },
      );
      assert.deepEqual(
        outcomes.map((o) => o.kind),
        ['existing', 'conflict', 'existing', 'created'],
      );
    });

    it('reports created_at per row if rows of one statement ever get different ones', async () => {
      // Today's default reads now() (one value per statement); a per-row default must still work.
      await pool.query(
        `ALTER TABLE messages ALTER COLUMN created_at
           SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint`,
      );
      try {
        const batch = Array.from({ length: 50 }, () => message());
        const inserted = await insertMessages(pool, batch, owned, 0, 'channel');
        const stored = await pool.query<{ created_at: string }>(
          'SELECT created_at::text FROM messages WHERE id = ANY($1) ORDER BY id',
          [batch.map((m) => m.id)],
        );
        assert.ok(new Set(stored.rows.map((row) => row.created_at)).size > 1);
        stored.rows.forEach((row, index) =>
          assert.equal(inserted.createdAtMs(index), Number(row.created_at)),
        );
      } finally {
        await pool.query(
          `ALTER TABLE messages ALTER COLUMN created_at
             SET DEFAULT (floor(extract(epoch FROM now()) * 1000))::bigint`,
        );
      }
    });

    it('creates each id once when identical batches race', async () => {
      const batch = Array.from({ length: 200 }, () => message());
      const context = { ownedEpochs: owned, hintBeforeMs: 0 };
      const results = await Promise.all([
        store.insertBatch(batch, context),
        store.insertBatch(batch, context),
        store.insertBatch(batch, context),
      ]);
      batch.forEach((_, i) => {
        const kinds = results.map((outcomes) => outcomes[i]!.kind).sort();
        assert.deepEqual(kinds, ['created', 'existing', 'existing'], `message ${i}`);
      });
    });
  });
});
