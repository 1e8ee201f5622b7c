/**
 * PgMessageStore against a real Postgres (scripts/services up postgres), in a schema of its own.
 * Times are plain numbers chosen by the test: the store never reads the clock for them.
 */
import assert from 'node:assert/strict';
import type { InsertOutcome, MessageRef, NewMessage, WheelItem } from '@hourglass/core';
import { DependencyUnavailableError } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { TcpProxy, createTestDatabase, serviceUrls } from '@hourglass/testkit';
import { Client } from 'pg';
import { MIGRATIONS, PgMessageStore } from '../../src';
import { claimStatement } from '../../src/sql/claims';
import { dueQuery } from '../../src/sql/due';

const SLOTS = 16;
const T0 = 1_900_000_000_000;

async function admin(
  sql: string,
  values?: unknown[],
  connectionString = serviceUrls().postgres,
): Promise<Record<string, unknown>[]> {
  const client = new Client({ connectionString });
  await client.connect();
  try {
    return (await client.query(sql, values)).rows as Record<string, unknown>[];
  } finally {
    await client.end();
  }
}

let counter = 0;
function message(overrides: Partial<NewMessage> = {}): NewMessage {
  counter += 1;
  return {
    app: 'app1',
    id: `m${counter}`,
    slot: 3,
    topic: 'orders',
    key: null,
    payload: Buffer.from(JSON.stringify({ n: counter })),
    payloadEncoding: 'json',
    headers: { 'x-trace': String(counter) },
    deliverAtMs: T0,
    fingerprint: `fp-${counter}`,
    ...overrides,
  };
}

/** A message as inserted, with the seq the store gave it. */
type Inserted = NewMessage & { seq: number };

/** Reads the slots' hints, then deletes them, as the engine drains them. */
async function drainHints(store: PgMessageStore, slots: readonly number[]): Promise<WheelItem[]> {
  const hints = await store.readHints(slots, 10_000);
  await store.deleteHints(hints);
  return hints;
}

function ref(m: { seq: number; slot: number }): MessageRef {
  return { seq: m.seq, slot: m.slot };
}

/** The seq of a created outcome (throws for any other outcome). */
function seqOf(outcome: InsertOutcome | undefined): number {
  if (outcome?.kind !== 'created') throw new Error(`expected created, got ${outcome?.kind}`);
  return outcome.seq;
}

function kinds(outcomes: InsertOutcome[]): string[] {
  return outcomes.map((o) => o.kind);
}

/** Resolves once another backend waits for a lock `blocker` holds (precise even when other test files share the database). */
async function untilBlockedBy(blocker: Client): Promise<void> {
  const pid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const rows = await admin(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))',
      [pid],
    );
    if ((rows[0]?.n as number) > 0) return;
    if (Date.now() > deadline)
      throw new Error('nothing waited for the lock: the statement under test did not take it');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('PgMessageStore (postgres)', () => {
  let db: TestDatabase;
  let store: PgMessageStore;
  const noLeases = { ownedEpochs: new Map<number, number>(), hintBeforeMs: 0 };

  before(async () => {
    db = await createTestDatabase();
    store = new PgMessageStore({ connectionString: db.connectionString });
  });

  after(async () => {
    await store?.stop();
    await db?.drop();
  });

  describe('migrate', () => {
    it('runs concurrently on several nodes and again idempotently', async () => {
      const other = new PgMessageStore({ connectionString: db.connectionString });
      await Promise.all([store.migrate(SLOTS), other.migrate(SLOTS), store.migrate(SLOTS)]);
      await store.migrate(SLOTS);
      const versions = await admin(
        'SELECT version, name FROM schema_migrations ORDER BY version',
        [],
        db.connectionString,
      );
      assert.deepEqual(versions, [
        { version: 1, name: '001_init' },
        { version: 2, name: '002_apps' },
        { version: 3, name: '003_seq' },
        { version: 4, name: '004_owner_revision' },
        { version: 5, name: '005_targets' },
        { version: 6, name: '006_versions' },
        { version: 7, name: '007_search' },
        { version: 8, name: '008_retention' },
        { version: 9, name: '009_schedules' },
      ]);
      const epochs = await admin(
        'SELECT count(*)::int AS n, max(slot) AS top FROM slot_epochs',
        [],
        db.connectionString,
      );
      assert.deepEqual(epochs, [{ n: SLOTS, top: SLOTS - 1 }]);
      await store.start();
      await store.start();
    });

    it('refuses a node configured with another slot count', async () => {
      await assert.rejects(
        store.migrate(128),
        /cluster was created with 16 slots; this node is configured with 128/,
      );
    });

    it('creates everything in the current schema only', async () => {
      const rows = await admin(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
        [db.schema],
      );
      assert.deepEqual(
        rows.map((r) => r.table_name),
        [
          'app_tokens',
          'app_topics',
          'apps',
          'cluster_meta',
          'message_attempts',
          'message_count_deltas',
          'message_counts',
          'messages',
          'messages_archive',
          'schedules',
          'schema_migrations',
          'slot_epochs',
          'wheel_hints',
        ],
      );
    });

    it('numbers existing messages and their hints (003_seq), and numbers bulk SQL inserts', async () => {
      const old = await createTestDatabase();
      const client = new Client({ connectionString: old.connectionString });
      await client.connect();
      try {
        // A schema as the previous version left it: 001 and 002, with rows and hints.
        await client.query(`CREATE TABLE schema_migrations (
          version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
        for (const migration of MIGRATIONS.filter((m) => m.version < 3)) {
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
            migration.version,
            migration.name,
          ]);
        }
        await client.query(
          `INSERT INTO messages (app, id, slot, topic, payload, payload_encoding, deliver_at, fingerprint)
           SELECT 'app1', 'old-' || g, 1, 't', '\\x00', 1, $1::bigint + g, 'f' FROM generate_series(1, 3) AS g`,
          [T0],
        );
        await client.query(
          `INSERT INTO wheel_hints (slot, app, id, deliver_at)
           VALUES (1, 'app1', 'old-2', $1::bigint + 2), (1, 'app1', 'gone', $1::bigint)`,
          [T0],
        );

        const upgraded = new PgMessageStore({ connectionString: old.connectionString });
        await upgraded.migrate(SLOTS);
        await upgraded.start();
        try {
          const rows = (
            await client.query<{ id: string; seq: string }>(
              'SELECT id, seq FROM messages ORDER BY id',
            )
          ).rows;
          assert.deepEqual(
            rows.map((row) => row.id),
            ['old-1', 'old-2', 'old-3'],
          );
          const seqs = rows.map((row) => Number(row.seq));
          assert.equal(new Set(seqs).size, 3, 'every existing row has its own seq');
          const old2 = seqs[1]!;
          assert.deepEqual(await drainHints(upgraded, [1]), [
            { seq: old2, slot: 1, dueMs: T0 + 2 },
          ]);

          // New rows continue the sequence, whoever inserts them (the bench fills by SQL).
          const [created] = await upgraded.insertBatch([message({ slot: 1 })], noLeases);
          assert.ok(seqOf(created) > Math.max(...seqs));
          await client.query(
            `INSERT INTO messages (app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at, fingerprint)
             SELECT 'bench', 'pending-' || g, g % 16, 't', NULL, '\\x7b7d'::bytea, 0, '{}'::jsonb, $1::bigint + g, 'bench'
             FROM generate_series(1, 100) AS g`,
            [T0],
          );
          const counts = await client.query<{ n: number; distinct: number }>(
            'SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct FROM messages',
          );
          assert.deepEqual(counts.rows[0], { n: 104, distinct: 104 });
        } finally {
          await upgraded.stop();
        }
      } finally {
        await client.end();
        await old.drop();
      }
    });
  });

  describe('insertBatch and get', () => {
    it('reports created, existing, conflict and repeats within one batch, in input order', async () => {
      const a = message();
      const b = message();
      const first = await store.insertBatch([a, b], noLeases);
      assert.deepEqual(kinds(first), ['created', 'created']);

      const c = message();
      const outcomes = await store.insertBatch(
        [
          { ...a }, // re-send
          { ...b, fingerprint: 'changed' }, // same id, other content
          c, // new
          { ...c }, // repeated in the batch: a re-send of the previous entry
          { ...c, fingerprint: 'other' }, // repeated with other content
        ],
        noLeases,
      );
      assert.deepEqual(kinds(outcomes), [
        'existing',
        'conflict',
        'created',
        'existing',
        'conflict',
      ]);
      assert.equal(
        outcomes[1]!.message.fingerprint,
        b.fingerprint,
        'a conflict returns the stored row',
      );
      assert.equal(outcomes[4]!.message.fingerprint, c.fingerprint);

      const stored = await store.get(c.app, c.id);
      assert.ok(stored);
      assert.deepEqual(
        { ...stored, createdAtMs: 0 },
        {
          app: c.app,
          id: c.id,
          slot: c.slot,
          topic: c.topic,
          key: null,
          payload: c.payload,
          payloadEncoding: 'json',
          headers: c.headers,
          deliverAtMs: c.deliverAtMs,
          state: 'scheduled',
          createdAtMs: 0,
          finishedAtMs: null,
          attempts: 0,
          lastError: null,
          fingerprint: c.fingerprint,
          targets: null,
          targetStates: null,
          retry: null,
          contentType: null,
          firstDeliverAtMs: null,
          version: 1,
        },
      );
      assert.equal(outcomes[2]!.message.createdAtMs, stored.createdAtMs);
      assert.equal(await store.get(c.app, 'nope'), null);
    });

    it('stores binary payloads, keys and ids of other apps independently', async () => {
      const bytes = Buffer.from([0, 1, 2, 255, 0x5c, 0x22]);
      const m = message({ payload: bytes, payloadEncoding: 'binary', key: 'k"1\\' });
      const otherApp = { ...m, app: 'app2', fingerprint: 'x' };
      assert.deepEqual(kinds(await store.insertBatch([m, otherApp], noLeases)), [
        'created',
        'created',
      ]);
      const stored = await store.get(m.app, m.id);
      assert.deepEqual(stored?.payload, bytes);
      assert.equal(stored?.payloadEncoding, 'binary');
      assert.equal(stored?.key, 'k"1\\');
      assert.equal((await store.get('app2', m.id))?.fingerprint, 'x');
    });

    it('resolves a conflict with a row committed by a concurrent insert', async () => {
      // Hold an uncommitted insert of the id, let our batch wait on it, then commit it.
      const m = message();
      const blocker = new Client({ connectionString: db.connectionString });
      await blocker.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query(
          `INSERT INTO messages (app, id, slot, topic, payload, payload_encoding, deliver_at, fingerprint)
           VALUES ($1, $2, $3, 't', '\\x00', 1, $4, 'theirs')`,
          [m.app, m.id, m.slot, m.deliverAtMs],
        );
        const pending = store.insertBatch(
          [message(), m, { ...m, fingerprint: 'theirs' }],
          noLeases,
        );
        await untilBlockedBy(blocker);
        await blocker.query('COMMIT');
        assert.deepEqual(kinds(await pending), ['created', 'conflict', 'existing']);
      } finally {
        await blocker.end();
      }
    });
  });

  describe('wheelable inserts and wheel hints', () => {
    const slot = 5;
    let epoch: number;
    let listenerStore: PgMessageStore;

    before(async () => {
      [{ epoch }] = (await store.acquireSlots([slot], 0)) as [{ slot: number; epoch: number }];
      listenerStore = new PgMessageStore({ connectionString: db.connectionString });
      await listenerStore.start();
    });

    after(async () => {
      await listenerStore.stop();
    });

    it('is wheelable when this node holds the slot epoch, and leaves no hint', async () => {
      const m = message({ slot, deliverAtMs: T0 });
      const [outcome] = await store.insertBatch([m], {
        ownedEpochs: new Map([[slot, epoch]]),
        hintBeforeMs: T0 + 1000,
      });
      assert.equal(outcome?.kind, 'created');
      assert.equal(outcome.kind === 'created' && outcome.wheelable, true);
      assert.ok(Number.isSafeInteger(seqOf(outcome)) && seqOf(outcome) > 0);
      assert.deepEqual(await drainHints(store, [slot]), []);
    });

    it('hints near-due messages of slots owned elsewhere and notifies the listener', async () => {
      const heard = new Promise<number>((resolve) =>
        listenerStore.onHint((s) => s === slot && resolve(s)),
      );
      await listenerStore.hintListenerReady();

      const near = message({ slot, deliverAtMs: T0 + 10 });
      const far = message({ slot, deliverAtMs: T0 + 5000 });
      const staleEpoch = message({ slot: slot, deliverAtMs: T0 + 20 });
      const outcomes = await store.insertBatch([near, far], {
        ownedEpochs: new Map(),
        hintBeforeMs: T0 + 1000,
      });
      assert.deepEqual(
        outcomes.map((o) => o.kind === 'created' && o.wheelable),
        [false, false],
      );
      const [stale] = await store.insertBatch([staleEpoch], {
        ownedEpochs: new Map([[slot, epoch - 1]]),
        hintBeforeMs: T0 + 1000,
      });
      assert.equal(stale?.kind === 'created' && stale.wheelable, false);

      assert.equal(await heard, slot);
      const hints = await drainHints(listenerStore, [slot]);
      assert.deepEqual(
        [...hints].sort((a, b) => a.seq - b.seq),
        [
          { seq: seqOf(outcomes[0]), slot, dueMs: T0 + 10 },
          { seq: seqOf(stale), slot, dueMs: T0 + 20 },
        ].sort((a, b) => a.seq - b.seq),
      );
      assert.deepEqual(await drainHints(listenerStore, [slot]), [], 'drained hints are gone');
    });

    it('keeps a hint until it is deleted, so a drain whose delete is lost loses nothing', async () => {
      const [outcome] = await store.insertBatch([message({ slot: 9, deliverAtMs: T0 })], {
        ownedEpochs: new Map(),
        hintBeforeMs: T0 + 60_000,
      });
      const seq = seqOf(outcome);
      const first = await store.readHints([9], 100);
      assert.deepEqual(first, [{ seq, slot: 9, dueMs: T0 }]);
      // The engine wheeled them, then its delete failed: the next drain reads them again.
      assert.deepEqual(await store.readHints([9], 100), first);
      await store.deleteHints(first);
      await store.deleteHints(first); // deleting what is gone is not an error
      assert.deepEqual(await store.readHints([9], 100), []);
    });

    it('listens again after its connection is killed', async () => {
      await listenerStore.hintListenerReady();
      const listening = `LISTEN "hourglass_hints_${db.schema}"`;
      const listenerPids = async (): Promise<number[]> =>
        (
          await admin(
            `SELECT pid FROM pg_stat_activity WHERE application_name = 'hourglass-hints' AND query = $1`,
            [listening],
          )
        ).map((row) => row.pid as number);
      const [before] = await listenerPids();
      assert.ok(before, 'the listener is connected');
      await admin('SELECT pg_terminate_backend($1)', [before]);
      for (;;) {
        const pids = await listenerPids();
        if (pids.length > 0 && !pids.includes(before)) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      const heard = new Promise<number>((resolve) =>
        listenerStore.onHint((s) => s === 8 && resolve(s)),
      );
      await store.insertBatch([message({ slot: 8 })], {
        ownedEpochs: new Map(),
        hintBeforeMs: T0 + 1,
      });
      assert.equal(await heard, 8);
      await drainHints(store, [8]);
    });

    it('drops hints of slots being taken over', async () => {
      await store.insertBatch([message({ slot: 6, deliverAtMs: T0 })], {
        ownedEpochs: new Map(),
        hintBeforeMs: T0 + 1,
      });
      await store.acquireSlots([6], 0);
      assert.deepEqual(await drainHints(store, [6]), []);
    });
  });

  describe('claiming, cancelling and fencing', () => {
    const slot = 7;
    let leases: Map<number, number>;

    beforeEach(async () => {
      const [lease] = await store.acquireSlots([slot], 0);
      leases = new Map([[slot, lease!.epoch]]);
    });

    async function scheduled(overrides: Partial<NewMessage> = {}): Promise<Inserted> {
      const m = message({ slot, deliverAtMs: T0, ...overrides });
      const [outcome] = await store.insertBatch([m], noLeases);
      return { ...m, seq: seqOf(outcome) };
    }

    it('claims due, scheduled messages only, once, without counting an attempt', async () => {
      const due = await scheduled();
      const later = await scheduled({ deliverAtMs: T0 + 1 });
      // A ref given twice in one claim (the wheel may hold a message twice) is claimed once.
      const claimed = await store.claim([ref(due), ref(later), ref(due)], leases, T0);
      assert.deepEqual(claimed, [
        {
          seq: due.seq,
          app: due.app,
          id: due.id,
          slot,
          topic: due.topic,
          key: null,
          payload: due.payload,
          headers: due.headers,
          deliverAtMs: T0,
          attempts: 0,
          payloadEncoding: 'json',
          targets: null,
          targetStates: null,
          retry: null,
          contentType: null,
          firstDeliverAtMs: null,
        },
      ]);
      // A row being delivered is never taken again, not even under the epoch that claimed it: a
      // second copy of the message in the wheel must fire to nothing.
      assert.deepEqual(
        await store.claim([ref(due)], leases, T0),
        [],
        're-claimed while delivering',
      );
      const stored = await store.get(due.app, due.id);
      assert.deepEqual([stored?.state, stored?.attempts], ['delivering', 0]);
      const foreign = new Map([[slot, (leases.get(slot) ?? 0) + 1000]]);
      assert.deepEqual(
        await store.claim([ref(due)], foreign, T0),
        [],
        'claimed under another epoch',
      );
      // A ref whose slot is not the message's touches nothing (the fence is per slot).
      const [other] = await store.acquireSlots([12], 0);
      const wrongSlot = { seq: later.seq, slot: 12 };
      assert.deepEqual(await store.claim([wrongSlot], new Map([[12, other!.epoch]]), T0 + 1), []);
    });

    it('probes messages_seq_idx per ref', async () => {
      const m = await scheduled();
      const client = new Client({ connectionString: db.connectionString });
      await client.connect();
      try {
        // A test table is tiny, so without this the planner rightly prefers a sequential scan.
        await client.query('SET enable_seqscan = off');
        const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${claimStatement}`, [
          [m.seq],
          [slot],
          [slot],
          [leases.get(slot)],
          T0,
        ]);
        const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
        assert.match(text, /messages_seq_idx/, text);
        assert.doesNotMatch(text, /messages_(pkey|due_idx|claimed_idx|app_pending_idx)/, text);
      } finally {
        await client.end();
      }
    });

    it('refuses a cancel after the claim, and claims nothing after a cancel', async () => {
      const claimedFirst = await scheduled();
      assert.equal((await store.claim([ref(claimedFirst)], leases, T0)).length, 1);
      const refused = await store.cancel(claimedFirst.app, claimedFirst.id, T0);
      assert.equal(refused.kind, 'refused');
      assert.equal(refused.kind === 'refused' && refused.message.state, 'delivering');

      const cancelledFirst = await scheduled();
      const cancelled = await store.cancel(cancelledFirst.app, cancelledFirst.id, T0 + 5);
      assert.equal(cancelled.kind, 'cancelled');
      assert.equal(cancelled.kind === 'cancelled' && cancelled.message.finishedAtMs, T0 + 5);
      // The seq, for the engine to drop the message from its wheel; not part of the message.
      assert.equal(cancelled.kind === 'cancelled' && cancelled.seq, cancelledFirst.seq);
      assert.equal(cancelled.kind === 'cancelled' && 'seq' in cancelled.message, false);
      assert.deepEqual(await store.claim([ref(cancelledFirst)], leases, T0 + 10), []);
      const again = await store.cancel(cancelledFirst.app, cancelledFirst.id, T0 + 6);
      assert.equal(again.kind === 'refused' && again.message.state, 'cancelled');
      assert.deepEqual(await store.cancel('app1', 'missing', T0), { kind: 'not_found' });
    });

    it('lets exactly one of a racing cancel and claim win', async () => {
      const ms = await Promise.all(Array.from({ length: 20 }, () => scheduled()));
      const results = await Promise.all(
        ms.map(async (m) => {
          const [claimed, cancel] = await Promise.all([
            store.claim([ref(m)], leases, T0),
            store.cancel(m.app, m.id, T0),
          ]);
          return { claimed: claimed.length === 1, cancelled: cancel.kind === 'cancelled' };
        }),
      );
      for (const r of results) assert.notEqual(r.claimed, r.cancelled, JSON.stringify(r));
    });

    it('moves delivering to delivered, scheduled (retry) or failed', async () => {
      const [ok, retry, fail] = [await scheduled(), await scheduled(), await scheduled()];
      assert.equal((await store.claim([ok, retry, fail].map(ref), leases, T0)).length, 3);

      assert.equal(await store.markDelivered([ref(ok)], leases, T0 + 1), 1);
      assert.equal(await store.markDelivered([ref(ok)], leases, T0 + 2), 0, 'only delivering rows');
      const delivered = await store.get(ok.app, ok.id);
      assert.equal(delivered?.state, 'delivered');
      assert.equal(delivered?.finishedAtMs, T0 + 1);
      assert.equal(delivered?.attempts, 1, 'a delivery counts as an attempt');

      const outage = { error: 'broker down', countAttempt: false, giveUp: false };
      assert.equal(await store.releaseClaims([ref(retry)], leases, outage, T0 + 1), 1);
      const retried = await store.get(retry.app, retry.id);
      assert.equal(retried?.state, 'scheduled');
      assert.equal(retried?.lastError, 'broker down');
      assert.equal(retried?.finishedAtMs, null);
      const [again] = await store.claim([ref(retry)], leases, T0 + 2);
      assert.equal(again?.attempts, 0, 'an outage is not an attempt');
      const refusal = { error: 'unknown topic', countAttempt: true, giveUp: false };
      assert.equal(await store.releaseClaims([ref(retry)], leases, refusal, T0 + 2), 1);
      const [third] = await store.claim([ref(retry)], leases, T0 + 2);
      assert.equal(third?.attempts, 1, 'a refusal counts');

      const giveUp = { error: 'too large', countAttempt: true, giveUp: true };
      assert.equal(await store.releaseClaims([ref(fail)], leases, giveUp, T0 + 3), 1);
      const failed = await store.get(fail.app, fail.id);
      assert.equal(failed?.state, 'failed');
      assert.equal(failed?.finishedAtMs, T0 + 3);
      assert.equal(failed?.lastError, 'too large');
      const cancel = await store.cancel(fail.app, fail.id, T0 + 4);
      assert.equal(cancel.kind === 'refused' && cancel.message.state, 'failed');
    });

    it('fences every slot-scoped write with the epoch, and a takeover resets claims', async () => {
      const [claimedBefore, deliveredLate, releasedLate, claimedLate] = [
        await scheduled(),
        await scheduled(),
        await scheduled(),
        await scheduled(),
      ];
      await store.claim([claimedBefore, deliveredLate, releasedLate].map(ref), leases, T0);

      const [takeover] = await store.acquireSlots([slot], 0);
      assert.ok(takeover);
      assert.equal(takeover.epoch, leases.get(slot)! + 1);
      for (const m of [claimedBefore, deliveredLate, releasedLate]) {
        assert.equal(
          (await store.get(m.app, m.id))?.state,
          'scheduled',
          'the takeover resets claims',
        );
      }

      assert.deepEqual(await store.claim([ref(claimedLate)], leases, T0), []);
      assert.equal(await store.markDelivered([ref(deliveredLate)], leases, T0), 0);
      const release = { error: 'x', countAttempt: true, giveUp: true };
      assert.equal(await store.releaseClaims([ref(releasedLate)], leases, release, T0), 0);
      assert.equal((await store.get(claimedLate.app, claimedLate.id))?.state, 'scheduled');

      const newLeases = new Map([[slot, takeover.epoch]]);
      const claimed = await store.claim([ref(deliveredLate)], newLeases, T0);
      assert.equal(claimed.length, 1);
      // A claim by the new owner is not disturbed by the old owner's late writes.
      assert.equal(await store.markDelivered([ref(deliveredLate)], leases, T0), 0);
      assert.equal(await store.markDelivered([ref(deliveredLate)], newLeases, T0), 1);
    });

    it('raises the epoch to at least minEpoch', async () => {
      // Slots of their own: the owner revisions these leave would refuse the others' acquisitions.
      const slot = 14;
      const [lease] = await store.acquireSlots([slot], 1000);
      assert.deepEqual(lease, { slot, epoch: 1000 });
      const [again] = await store.acquireSlots([slot], 1000);
      assert.deepEqual(again, { slot, epoch: 1001 }, 'the same owner re-acquires');
      const [newer] = await store.acquireSlots([slot], 1500);
      assert.deepEqual(newer, { slot, epoch: 1500 });
    });

    it('refuses a late acquisition of a replaced owner, leaving the newer epoch and its claims', async () => {
      // Owner A (revision 200) is replaced by owner B (revision 300); A's acquisition comes late.
      const slot = 15;
      await store.acquireSlots([slot], 200);
      const [b] = await store.acquireSlots([slot], 300);
      const bLeases = new Map([[slot, b!.epoch]]);
      const m = await scheduled({ slot });
      assert.equal((await store.claim([ref(m)], bLeases, T0)).length, 1);
      assert.deepEqual(await store.acquireSlots([slot, 13], 200), [
        { slot: 13, epoch: (await store.currentEpochs([13])).get(13)! },
      ]);
      assert.equal((await store.currentEpochs([slot])).get(slot), b!.epoch, 'B keeps its epoch');
      assert.equal((await store.get(m.app, m.id))?.state, 'delivering', "B's claim is not reset");
      assert.equal(await store.markDelivered([ref(m)], bLeases, T0), 1);
    });

    it('holds the epoch lock across work: a takeover waits for it, then the old lease is not confirmed', async () => {
      const m = await scheduled();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let inside!: () => void;
      const entered = new Promise<void>((resolve) => (inside = resolve));
      const locked = store.withEpochLock(leases, async (confirmed) => {
        inside();
        await gate;
        return [...confirmed];
      });
      await entered;
      let tookOver = false;
      const takeover = store.acquireSlots([slot], 0).then((result) => {
        tookOver = true;
        return result;
      });
      // The takeover must still be waiting while the work holds the lock: the claim below
      // (shared lock, compatible) goes through first and is then reset by the takeover.
      assert.equal((await store.claim([ref(m)], leases, T0)).length, 1);
      assert.equal(tookOver, false, 'the takeover waited for the epoch lock');
      release();
      assert.deepEqual(await locked, [slot]);
      const [lease] = await takeover;
      assert.equal(
        (await store.get(m.app, m.id))?.state,
        'scheduled',
        'the takeover reset the claim',
      );
      assert.deepEqual([...(await store.withEpochLock(leases, (c) => Promise.resolve(c)))], []);
      assert.deepEqual(
        [
          ...(await store.withEpochLock(new Map([[slot, lease!.epoch]]), (c) =>
            Promise.resolve(c),
          )),
        ],
        [slot],
      );
    });

    it('finds the rows claimed under the given leases', async () => {
      const [a, b] = [await scheduled(), await scheduled()];
      await store.claim([ref(a)], leases, T0);
      assert.deepEqual(await store.findDelivering(leases, 10), [ref(a)]);
      const other = new Map([[slot, leases.get(slot)! + 7]]);
      assert.deepEqual(await store.findDelivering(other, 10), []);
      assert.equal((await store.get(b.app, b.id))?.state, 'scheduled');
    });

    it('waits for an in-flight claim and then resets it', async () => {
      // The claim holds its slot epoch FOR SHARE until commit, exactly like claim's fence CTE.
      const m = await scheduled();
      const claimer = new Client({ connectionString: db.connectionString });
      await claimer.connect();
      try {
        await claimer.query('BEGIN');
        await claimer.query('SELECT epoch FROM slot_epochs WHERE slot = $1 FOR SHARE', [slot]);
        await claimer.query(
          `UPDATE messages SET state = 1, claimed_epoch = $3 WHERE app = $1 AND id = $2`,
          [m.app, m.id, leases.get(slot)],
        );
        const takeover = store.acquireSlots([slot], 0);
        await untilBlockedBy(claimer);
        await claimer.query('COMMIT');
        await takeover;
      } finally {
        await claimer.end();
      }
      assert.equal(
        (await store.get(m.app, m.id))?.state,
        'scheduled',
        'the claim committed during the wait was reset',
      );
    });

    it('makes claim and markDelivered racing an uncommitted takeover wait for it and then change nothing', async () => {
      const toClaim = await scheduled();
      const toDeliver = await scheduled();
      await store.claim([ref(toDeliver)], leases, T0);
      const takeover = new Client({ connectionString: db.connectionString });
      await takeover.connect();
      try {
        await takeover.query('BEGIN');
        await takeover.query('UPDATE slot_epochs SET epoch = epoch + 1 WHERE slot = $1', [slot]);
        const claim = store.claim([ref(toClaim)], leases, T0);
        const deliver = store.markDelivered([ref(toDeliver)], leases, T0);
        await untilBlockedBy(takeover);
        await takeover.query('COMMIT');
        assert.deepEqual(await claim, []);
        assert.equal(await deliver, 0);
      } finally {
        await takeover.end();
      }
      assert.equal((await store.get(toClaim.app, toClaim.id))?.state, 'scheduled');
      assert.equal(
        (await store.get(toDeliver.app, toDeliver.id))?.state,
        'delivering',
        'left for the takeover to reset',
      );
    });

    it('makes an insert racing an uncommitted takeover wait, see the new epoch and leave a hint', async () => {
      const inserter = new Client({ connectionString: db.connectionString });
      await inserter.connect();
      try {
        await inserter.query('BEGIN');
        await inserter.query('SELECT epoch FROM slot_epochs WHERE slot = $1 FOR UPDATE', [slot]);
        // A takeover is in flight (uncommitted bump): the insert must wait and then see the new epoch.
        await inserter.query('UPDATE slot_epochs SET epoch = epoch + 1 WHERE slot = $1', [slot]);
        const m = message({ slot, deliverAtMs: T0 });
        const pending = store.insertBatch([m], { ownedEpochs: leases, hintBeforeMs: T0 + 1 });
        await untilBlockedBy(inserter);
        await inserter.query('COMMIT');
        const [outcome] = await pending;
        assert.equal(outcome?.kind === 'created' && outcome.wheelable, false);
        assert.deepEqual(
          (await drainHints(store, [slot])).map((h) => h.seq),
          [seqOf(outcome)],
        );
      } finally {
        await inserter.end();
      }
    });
  });

  describe('loadDue', () => {
    const slots = [9, 10];
    let all: Inserted[];

    before(async () => {
      const wanted = [
        message({ slot: 9, deliverAtMs: T0 + 30, id: 'b' }),
        message({ slot: 10, deliverAtMs: T0 + 30, id: 'a' }),
        message({ slot: 9, deliverAtMs: T0 + 10 }),
        message({ slot: 10, deliverAtMs: T0 + 20 }),
        message({ slot: 9, deliverAtMs: T0 + 30, id: 'c' }),
        message({ slot: 10, deliverAtMs: T0 + 40 }),
        message({ slot: 9, deliverAtMs: T0 + 50 }),
      ];
      const outsiders = [
        message({ slot: 11, deliverAtMs: T0 + 30 }), // another slot
        message({ slot: 9, deliverAtMs: T0 + 9 }), // before the range
        message({ slot: 9, deliverAtMs: T0 + 60 }), // at its end (exclusive)
        message({ slot: 9, deliverAtMs: T0 + 30, id: 'cancelled' }),
      ];
      const outcomes = await store.insertBatch([...wanted, ...outsiders], noLeases);
      all = wanted.map((m, n) => ({ ...m, seq: seqOf(outcomes[n]) }));
      await store.cancel('app1', 'cancelled', T0);
    });

    // Three of them are due at T0 + 30: ties go by seq.
    const expected = (): WheelItem[] =>
      [...all]
        .sort((x, y) => x.deliverAtMs - y.deliverAtMs || x.seq - y.seq)
        .map((m) => ({ seq: m.seq, slot: m.slot, dueMs: m.deliverAtMs }));

    it('returns scheduled messages of the slots in [from, until), ordered', async () => {
      assert.deepEqual(await store.loadDue(slots, T0 + 10, T0 + 60, 100), expected());
    });

    it('pages with the last item of the previous page', async () => {
      const pages: WheelItem[][] = [];
      let after: WheelItem | undefined;
      for (;;) {
        const page = await store.loadDue(slots, T0 + 10, T0 + 60, 2, after);
        if (page.length === 0) break;
        pages.push(page);
        after = page[page.length - 1];
      }
      assert.deepEqual(
        pages.map((p) => p.length),
        [2, 2, 2, 1],
      );
      assert.deepEqual(pages.flat(), expected());
    });

    it('is served by the partial due index', async () => {
      const client = new Client({ connectionString: db.connectionString });
      await client.connect();
      try {
        // A test table is tiny, so without this the planner rightly prefers a sequential scan.
        await client.query('SET enable_seqscan = off');
        for (const withCursor of [false, true]) {
          const values: unknown[] = [slots, T0, T0 + 60, 100, ...(withCursor ? [T0, 0] : [])];
          const plan = await client.query<{ 'QUERY PLAN': string }>(
            `EXPLAIN ${dueQuery(withCursor)}`,
            values,
          );
          const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
          assert.match(text, /messages_due_idx/, text);
          assert.match(text, /Index Cond: \(\(slot = ANY/, text);
        }
      } finally {
        await client.end();
      }
    });
  });

  describe('when Postgres is unreachable', () => {
    it('answers DependencyUnavailableError (503), fast', async () => {
      const down = new PgMessageStore({
        connectionString: 'postgres://postgres@127.0.0.1:1/hourglass',
        connectionTimeoutMs: 1000,
      });
      await down.start();
      try {
        await assert.rejects(down.ping(), DependencyUnavailableError);
        await assert.rejects(down.insertBatch([message()], noLeases), DependencyUnavailableError);
        await assert.rejects(down.acquireSlots([1], 0), DependencyUnavailableError);
        await assert.rejects(down.migrate(SLOTS), DependencyUnavailableError);
      } finally {
        await down.stop();
      }
    });

    it('answers DependencyUnavailableError when Postgres stops answering on an open connection', async () => {
      // A partition that drops packets: no reset, no reply. Without a client-side bound the
      // call (and the firing path waiting on it) would hang for good.
      const proxy = await TcpProxy.start(`127.0.0.1:${new URL(db.connectionString).port}`);
      const url = new URL(db.connectionString);
      url.host = `127.0.0.1:${proxy.port}`;
      const hung = new PgMessageStore({
        connectionString: url.toString(),
        statementTimeoutMs: 300,
      });
      await hung.start();
      try {
        await hung.ping();
        proxy.freeze();
        const started = Date.now();
        await assert.rejects(hung.ping(), DependencyUnavailableError);
        assert.ok(Date.now() - started < 10_000, 'bounded by the query timeout');
      } finally {
        proxy.restore();
        await hung.stop();
        await proxy.close();
      }
    });

    it('lets genuine errors through unwrapped', async () => {
      await assert.rejects(store.acquireSlots([SLOTS + 1], 0), (err: Error) => {
        assert.ok(!(err instanceof DependencyUnavailableError));
        assert.match(err.message, /no such slots: 17/);
        return true;
      });
    });
  });
});
