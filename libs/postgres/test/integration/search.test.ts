/**
 * Search and bulk cancel on a real Postgres (issue 14), in a schema of its own: every filter,
 * keyset paging that returns each message once while inserts go on, bounded pages, bulk cancel
 * by ids (with its counts) and by filter, and cancels racing claims.
 */
import assert from 'node:assert/strict';
import type {
  MessageFilter,
  MessageRef,
  NewMessage,
  SearchPosition,
  TargetSpec,
} from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { Client } from 'pg';
import { PgMessageStore } from '../../src';

const SLOTS = 8;
const T0 = 1_900_000_000_000;
const NO_FILTER: MessageFilter = {
  app: null,
  states: null,
  topic: null,
  key: null,
  dueAfterMs: null,
  dueBeforeMs: null,
  createdAfterMs: null,
  target: null,
};
const HTTP: TargetSpec = {
  type: 'http',
  url: 'https://example.com/hook',
  method: 'POST',
  headers: {},
  timeoutMs: 1000,
  name: null,
  envelope: false,
  expectBody: null,
};

describe('PgMessageStore: search and bulk cancel (postgres)', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let store: PgMessageStore;
  let leases: Map<number, number>;
  let counter = 0;

  before(async () => {
    db = await createTestDatabase();
    store = new PgMessageStore({ connectionString: db.connectionString, poolSize: 12 });
    await store.migrate(SLOTS);
    await store.start();
    const acquired = await store.acquireSlots(
      Array.from({ length: SLOTS }, (_, slot) => slot),
      0,
    );
    leases = new Map(acquired.map((lease) => [lease.slot, lease.epoch]));
  });

  after(async () => {
    await store?.stop();
    await db?.drop();
  });

  function message(overrides: Partial<NewMessage> = {}): NewMessage {
    counter++;
    return {
      app: 'shop',
      id: `m-${String(counter).padStart(6, '0')}`,
      slot: counter % SLOTS,
      topic: 'orders',
      key: null,
      payload: Buffer.from('{}'),
      payloadEncoding: 'json',
      headers: {},
      deliverAtMs: T0,
      fingerprint: `fp-${counter}`,
      ...overrides,
    };
  }

  async function insert(messages: NewMessage[]): Promise<Array<NewMessage & MessageRef>> {
    const outcomes = await store.insertBatch(messages, { ownedEpochs: leases, hintBeforeMs: 0 });
    return outcomes.map((outcome, index) => {
      assert.equal(outcome.kind, 'created');
      return { ...messages[index]!, seq: outcome.kind === 'created' ? outcome.seq : -1 };
    });
  }

  /** Every page of a search, following the cursor to the end. */
  async function everything(
    filter: MessageFilter,
    limit = 1000,
    scanLimit = 100_000,
  ): Promise<string[]> {
    const ids: string[] = [];
    let after: SearchPosition | null = null;
    for (let pages = 0; pages < 10_000; pages++) {
      const page = await store.searchMessages(filter, after, limit, scanLimit);
      ids.push(...page.messages.map((m) => `${m.app}/${m.id}`));
      if (page.next === null) return ids;
      after = page.next;
    }
    throw new Error('the listing never ended');
  }

  async function stateOf(app: string, id: string): Promise<string | undefined> {
    return (await store.get(app, id))?.state;
  }

  async function sql(text: string, values: unknown[] = []): Promise<void> {
    const client = new Client({ connectionString: db.connectionString });
    await client.connect();
    try {
      await client.query(text, values);
    } finally {
      await client.end();
    }
  }

  describe('filters', () => {
    const app = 'filters';
    const ids: Record<string, string> = {};

    before(async () => {
      const named = (name: string, overrides: Partial<NewMessage>): NewMessage => {
        const m = message({ app, ...overrides });
        ids[name] = m.id;
        return m;
      };
      const created = await insert([
        named('early', { deliverAtMs: T0, key: 'k1' }),
        named('late', { deliverAtMs: T0 + 60_000, key: 'k1' }),
        named('audit', { topic: 'audit', deliverAtMs: T0 + 1000, key: 'k2' }),
        named('callback', {
          topic: '',
          key: null,
          deliverAtMs: T0 + 2000,
          targets: [HTTP],
        }),
        named('both', {
          topic: 'orders',
          key: 'k1',
          deliverAtMs: T0 + 3000,
          targets: [{ type: 'kafka', topic: 'orders', key: 'k1', headers: {} }, HTTP],
        }),
        named('delivered', { deliverAtMs: T0 + 4000, key: 'k1' }),
        named('cancelled', { deliverAtMs: T0 + 5000, key: 'k1' }),
        // Another app's message with the same key: never in this app's results.
        message({ app: 'other', key: 'k1' }),
      ]);
      const delivered = created[5]!;
      assert.equal((await store.claim([delivered], leases, T0 + 10_000)).length, 1);
      assert.equal(await store.markDelivered([delivered], leases, T0 + 10_000), 1);
      assert.equal((await store.cancel(app, ids.cancelled!, T0)).kind, 'cancelled');
      // created_at is the insert's now(); spread it so createdAfter has something to split.
      await sql(`UPDATE messages SET created_at = $2 WHERE app = $1`, [app, T0 - 10_000]);
      await sql(`UPDATE messages SET created_at = $2 WHERE app = $1 AND id = $3`, [
        app,
        T0,
        ids.late,
      ]);
    });

    async function found(filter: Partial<MessageFilter>): Promise<string[]> {
      const page = await store.searchMessages({ ...NO_FILTER, app, ...filter }, null, 100, 1000);
      assert.equal(page.next, null);
      const byId = new Map(Object.entries(ids).map(([name, id]) => [id, name]));
      return page.messages.map((m) => byId.get(m.id) ?? `?${m.id}`).sort();
    }

    it('filters on each field, and on several at once', async () => {
      const all = ['audit', 'both', 'callback', 'cancelled', 'delivered', 'early', 'late'];
      assert.deepEqual(await found({}), all);
      assert.deepEqual(await found({ states: ['scheduled', 'delivering'] }), [
        'audit',
        'both',
        'callback',
        'early',
        'late',
      ]);
      assert.deepEqual(await found({ states: ['delivered'] }), ['delivered']);
      assert.deepEqual(await found({ states: ['cancelled', 'failed'] }), ['cancelled']);
      assert.deepEqual(await found({ topic: 'audit' }), ['audit']);
      assert.deepEqual(await found({ key: 'k1' }), [
        'both',
        'cancelled',
        'delivered',
        'early',
        'late',
      ]);
      assert.deepEqual(await found({ dueAfterMs: T0 + 1000, dueBeforeMs: T0 + 4000 }), [
        'audit',
        'both',
        'callback',
      ]);
      assert.deepEqual(await found({ createdAfterMs: T0 }), ['late']);
      assert.deepEqual(await found({ target: 'http' }), ['both', 'callback']);
      assert.deepEqual(await found({ target: 'kafka' }), [
        'audit',
        'both',
        'cancelled',
        'delivered',
        'early',
        'late',
      ]);
      assert.deepEqual(
        await found({ key: 'k1', states: ['scheduled', 'delivering'], dueBeforeMs: T0 + 60_000 }),
        ['both', 'early'],
      );
    });

    it('orders newest id first and covers every app without an app filter', async () => {
      const page = await store.searchMessages({ ...NO_FILTER, key: 'k1' }, null, 100, 100_000);
      const keys = page.messages.map((m) => [m.app, m.id] as const);
      const sorted = [...keys].sort((a, b) =>
        a[0] === b[0] ? (a[1] < b[1] ? 1 : -1) : a[0] < b[0] ? 1 : -1,
      );
      assert.deepEqual(keys, sorted);
      assert.deepEqual([...new Set(keys.map(([name]) => name))].sort(), ['filters', 'other']);
    });

    it('reads a bounded window per page: a sparse filter gives short pages and goes on', async () => {
      const filter: MessageFilter = { ...NO_FILTER, app, topic: 'audit' };
      const first = await store.searchMessages(filter, null, 100, 2);
      assert.equal(first.messages.length, 0, 'the two newest rows are not audit');
      assert.ok(first.next, 'a window that was full goes on');
      assert.deepEqual(await everything(filter, 100, 2), [`${app}/${ids.audit}`]);
    });
  });

  it('pages through every matching message exactly once while inserts go on', async () => {
    const app = 'paging';
    const existing = new Set<string>();
    for (let chunk = 0; chunk < 5; chunk++) {
      const created = await insert(
        Array.from({ length: 200 }, (_, i) =>
          message({ app, key: i % 2 === 0 ? 'even' : 'odd', deliverAtMs: T0 + i }),
        ),
      );
      for (const m of created) if (m.key === 'even') existing.add(`${app}/${m.id}`);
    }
    // Ids that sort both before and after the ones being paged, so new rows land on both sides.
    let stop = false;
    let inserted = 0;
    const writer = (async () => {
      while (!stop) {
        await insert([
          message({ app, key: 'even', id: `a-${inserted}` }),
          message({ app, key: 'even', id: `z-${inserted}` }),
        ]);
        inserted += 2;
      }
    })();
    let seen: string[];
    try {
      seen = await everything({ ...NO_FILTER, app, key: 'even' }, 7, 40);
    } finally {
      stop = true;
      await writer;
    }
    assert.ok(inserted > 0, 'inserts ran while paging');
    assert.equal(new Set(seen).size, seen.length, 'no message is returned twice');
    for (const id of existing) assert.ok(seen.includes(id), `${id} was never returned`);
  });

  it('cancels by ids and counts cancelled, already finished, in delivery and not found', async () => {
    const app = 'ids';
    const [scheduled1, scheduled2, delivered, cancelled, claimed] = await insert(
      Array.from({ length: 5 }, () => message({ app })),
    );
    assert.ok(scheduled1 && scheduled2 && delivered && cancelled && claimed);
    assert.equal((await store.claim([delivered], leases, T0)).length, 1);
    assert.equal(await store.markDelivered([delivered], leases, T0), 1);
    assert.equal((await store.cancel(app, cancelled.id, T0)).kind, 'cancelled');
    assert.equal((await store.claim([claimed], leases, T0)).length, 1);

    const outcome = await store.cancelIds(
      app,
      [scheduled1.id, scheduled2.id, scheduled1.id, delivered.id, cancelled.id, claimed.id, 'nope'],
      T0 + 1,
    );
    assert.deepEqual(outcome.cancelled.map((ref) => ref.id).sort(), [scheduled1.id, scheduled2.id]);
    assert.deepEqual(
      outcome.cancelled.map((ref) => ref.seq).sort((a, b) => a - b),
      [scheduled1.seq, scheduled2.seq].sort((a, b) => a - b),
    );
    assert.equal(outcome.cancelled[0]?.deliverAtMs, T0);
    assert.equal(outcome.alreadyFinished, 2);
    assert.equal(outcome.deliveryInProgress, 1);
    assert.equal(outcome.notFound, 1);
    assert.equal(await stateOf(app, scheduled1.id), 'cancelled');
    assert.equal(await stateOf(app, claimed.id), 'delivering');
    // Other apps' ids are not found, and untouched.
    const [foreign] = await insert([message({ app: 'ids-other' })]);
    const cross = await store.cancelIds(app, [foreign!.id], T0);
    assert.equal(cross.notFound, 1);
    assert.equal(await stateOf('ids-other', foreign!.id), 'scheduled');
  });

  it('cancels every scheduled message of a key in batches, and nothing else', async () => {
    const app = 'bykey';
    const created = await insert(
      Array.from({ length: 120 }, (_, i) => message({ app, key: i % 3 === 0 ? 'K' : 'other' })),
    );
    const keyed = created.filter((m) => m.key === 'K');
    const claimed = keyed[0]!;
    const delivered = keyed[1]!;
    assert.equal((await store.claim([claimed, delivered], leases, T0)).length, 2);
    assert.equal(await store.markDelivered([delivered], leases, T0), 1);

    const filter: MessageFilter = {
      ...NO_FILTER,
      app,
      key: 'K',
      states: ['scheduled', 'delivering'],
    };
    let cancelled = 0;
    let notCancellable = 0;
    let after: SearchPosition | null = null;
    let batches = 0;
    do {
      const batch = await store.cancelMatching(filter, after, 7, 25, T0 + 1);
      assert.ok(batch.cancelled.length <= 7);
      cancelled += batch.cancelled.length;
      notCancellable += batch.notCancellable;
      after = batch.next;
      batches++;
    } while (after !== null);
    assert.ok(batches > 5, `${batches} batches`);
    assert.equal(cancelled, keyed.length - 2);
    assert.equal(notCancellable, 1, 'the message in delivery');
    for (const m of created) {
      const expected =
        m === claimed
          ? 'delivering'
          : m === delivered
            ? 'delivered'
            : m.key === 'K'
              ? 'cancelled'
              : 'scheduled';
      assert.equal(await stateOf(app, m.id), expected, m.id);
    }
    // Once done, the same filter finds nothing left to cancel.
    const again = await store.cancelMatching(filter, null, 1000, 1000, T0 + 2);
    assert.deepEqual(
      { cancelled: again.cancelled.length, notCancellable: again.notCancellable },
      { cancelled: 0, notCancellable: 1 },
    );
  });

  it('never leaves a message both cancelled and delivered when cancels race claims', async () => {
    const app = 'race';
    const created = await insert(
      Array.from({ length: 600 }, (_, i) => message({ app, key: 'R', deliverAtMs: T0 + i })),
    );
    const claimedSeqs = new Set<number>();
    const cancelledIds = new Set<string>();
    const claims = (async () => {
      // Claims in due order, in chunks, like the firing path, then marks them delivered.
      for (let i = 0; i < created.length; i += 50) {
        const chunk = created.slice(i, i + 50);
        const got = await store.claim(chunk, leases, T0 + 10_000);
        for (const m of got) claimedSeqs.add(m.seq);
        await store.markDelivered(got, leases, T0 + 10_000);
      }
    })();
    const cancels = (async () => {
      // Named ids from the end backwards, and the key filter, at the same time as the claims.
      const ids = created.map((m) => m.id).reverse();
      for (let i = 0; i < 300; i += 100) {
        const outcome = await store.cancelIds(app, ids.slice(i, i + 100), T0);
        for (const ref of outcome.cancelled) cancelledIds.add(ref.id);
      }
      let after: SearchPosition | null = null;
      do {
        const batch = await store.cancelMatching(
          { ...NO_FILTER, app, key: 'R', states: ['scheduled', 'delivering'] },
          after,
          40,
          200,
          T0,
        );
        for (const ref of batch.cancelled) cancelledIds.add(ref.id);
        after = batch.next;
      } while (after !== null);
    })();
    await Promise.all([claims, cancels]);

    const client = new Client({ connectionString: db.connectionString });
    await client.connect();
    let rows: Array<{ id: string; seq: string; state: number }>;
    try {
      rows = (
        await client.query<{ id: string; seq: string; state: number }>(
          'SELECT id, seq, state FROM messages WHERE app = $1',
          [app],
        )
      ).rows;
    } finally {
      await client.end();
    }
    let both = 0;
    for (const row of rows) {
      const wasClaimed = claimedSeqs.has(Number(row.seq));
      const wasCancelled = cancelledIds.has(row.id);
      if (wasClaimed && wasCancelled) both++;
      // Exactly one side won each message, and the table agrees with what each side was told.
      assert.ok(wasClaimed || wasCancelled, `${row.id}: neither claimed nor cancelled`);
      assert.equal(row.state, wasCancelled ? 3 : 2, row.id);
    }
    assert.equal(both, 0);
    assert.ok(cancelledIds.size > 0 && claimedSeqs.size > 0, 'both sides won some');
  });
});
