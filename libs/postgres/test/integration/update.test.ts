/**
 * updateScheduled (PATCH, migration 006): a compare-and-swap on the version, ordered against the
 * claim by the row lock, hinting the owner of a slot this store does not own.
 */
import assert from 'node:assert/strict';
import type { MessageChange, NewMessage } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { PgMessageStore } from '../../src';

const SLOTS = 16;
const OWNED = 5;
const NOT_OWNED = 6;
const T0 = 1_900_000_000_000;

describe('PgMessageStore: changing scheduled messages (postgres)', () => {
  let db: TestDatabase;
  let store: PgMessageStore;
  let leases: Map<number, number>;
  let counter = 0;

  before(async () => {
    db = await createTestDatabase();
    store = new PgMessageStore({ connectionString: db.connectionString });
    await store.migrate(SLOTS);
    await store.start();
    const [lease] = await store.acquireSlots([OWNED], 0);
    leases = new Map([[OWNED, lease!.epoch]]);
  });

  after(async () => {
    await store?.stop();
    await db?.drop();
  });

  async function insert(slot = OWNED, deliverAtMs = T0): Promise<{ seq: number; id: string }> {
    counter++;
    const message: NewMessage = {
      app: 'app1',
      id: `u${counter}`,
      slot,
      topic: 'orders',
      key: 'k',
      payload: Buffer.from('"v1"'),
      payloadEncoding: 'json',
      headers: {},
      deliverAtMs,
      fingerprint: `fp-u${counter}`,
    };
    const [outcome] = await store.insertBatch([message], { ownedEpochs: leases, hintBeforeMs: 0 });
    assert.equal(outcome?.kind, 'created');
    return { seq: outcome.kind === 'created' ? outcome.seq : -1, id: message.id };
  }

  const change = (payload: string, deliverAtMs: number | null = null): MessageChange => ({
    topic: 'orders',
    key: 'k2',
    payload: Buffer.from(JSON.stringify(payload)),
    payloadEncoding: 'json',
    headers: { 'x-v': payload },
    targets: null,
    retry: null,
    contentType: null,
    targetStates: null,
    deliverAtMs,
  });

  it('applies to the version read, raises it, and refuses a stale one', async () => {
    const { id, seq } = await insert();
    const context = { ownedEpochs: leases, hintBeforeMs: 0 };
    const first = await store.updateScheduled('app1', id, 1, change('v2', T0 + 500), context);
    assert.deepEqual(first, {
      seq,
      slot: OWNED,
      deliverAtMs: T0 + 500,
      previousDeliverAtMs: T0,
      version: 2,
      wheelable: true,
    });
    assert.equal(await store.updateScheduled('app1', id, 1, change('v3'), context), null);
    const stored = await store.get('app1', id);
    assert.equal(stored?.version, 2);
    assert.equal(stored?.payload.toString(), '"v2"');
    assert.equal(stored?.key, 'k2');
    assert.deepEqual(stored?.headers, { 'x-v': 'v2' });
    assert.equal(stored?.deliverAtMs, T0 + 500);
    // A content-only change keeps the due time.
    const second = await store.updateScheduled('app1', id, 2, change('v3'), context);
    assert.equal(second?.deliverAtMs, T0 + 500);
    assert.equal(second?.version, 3);
  });

  it('never changes a claimed message, and a claim after a change reads the new content', async () => {
    for (let round = 0; round < 20; round++) {
      const { id, seq } = await insert(OWNED, T0);
      const context = { ownedEpochs: leases, hintBeforeMs: 0 };
      const [claimed, updated] = await Promise.all([
        store.claim([{ seq, slot: OWNED }], leases, T0 + 1),
        store.updateScheduled('app1', id, 1, change('new'), context),
      ]);
      if (updated) {
        // The change came first: a claim that also got the row read the new content.
        if (claimed.length === 1) assert.equal(claimed[0]!.payload.toString(), '"new"');
        else {
          const [later] = await store.claim([{ seq, slot: OWNED }], leases, T0 + 1);
          assert.equal(later?.payload.toString(), '"new"');
        }
      } else {
        assert.equal(claimed.length, 1, 'when the change missed, the claim had won');
        assert.equal(claimed[0]!.payload.toString(), '"v1"');
        assert.equal((await store.get('app1', id))?.version, 1);
      }
    }
  });

  it('does not claim a message moved later, and leaves a hint when the owner is another node', async () => {
    const { id, seq } = await insert(NOT_OWNED, T0);
    const hintsBefore = await store.readHints([NOT_OWNED], 100);
    const later = await store.updateScheduled('app1', id, 1, change('later', T0 + 60_000), {
      ownedEpochs: leases,
      hintBeforeMs: T0 + 120_000,
    });
    assert.equal(later?.wheelable, false);
    const hints = await store.readHints([NOT_OWNED], 100);
    assert.equal(hints.length, hintsBefore.length + 1);
    assert.deepEqual(
      hints.find((hint) => hint.seq === seq),
      { seq, slot: NOT_OWNED, dueMs: T0 + 60_000 },
    );
    // A time beyond hintBefore is the owner's loader's to find: no hint.
    await store.updateScheduled('app1', id, 2, change('far', T0 + 600_000), {
      ownedEpochs: leases,
      hintBeforeMs: T0 + 120_000,
    });
    assert.equal((await store.readHints([NOT_OWNED], 100)).length, hints.length);
    // The old due time claims nothing (the claim checks the due time).
    const [owner] = await store.acquireSlots([NOT_OWNED], 0);
    const ownerLeases = new Map([[NOT_OWNED, owner!.epoch]]);
    assert.deepEqual(await store.claim([{ seq, slot: NOT_OWNED }], ownerLeases, T0 + 1), []);
    const [claimed] = await store.claim([{ seq, slot: NOT_OWNED }], ownerLeases, T0 + 600_000);
    assert.equal(claimed?.payload.toString(), '"far"');
  });

  it("keeps a change's hint when a drain deletes the insert's hint it read before", async () => {
    // Inserted and then moved by a node that does not own the slot: two hints for one message.
    // A drain that read only the insert's must not delete the change's with it.
    const context = { ownedEpochs: leases, hintBeforeMs: T0 + 120_000 };
    counter++;
    const id = `u${counter}`;
    const [outcome] = await store.insertBatch(
      [
        {
          app: 'app1',
          id,
          slot: NOT_OWNED,
          topic: 'orders',
          key: 'k',
          payload: Buffer.from('"v1"'),
          payloadEncoding: 'json',
          headers: {},
          deliverAtMs: T0 + 1000,
          fingerprint: `fp-${id}`,
        },
      ],
      context,
    );
    assert.equal(outcome?.kind, 'created');
    const seq = outcome.kind === 'created' ? outcome.seq : -1;
    const read = (await store.readHints([NOT_OWNED], 1000)).filter((hint) => hint.seq === seq);
    assert.deepEqual(read, [{ seq, slot: NOT_OWNED, dueMs: T0 + 1000 }]);
    await store.updateScheduled('app1', id, 1, change('moved', T0 + 2000), context);
    await store.deleteHints(read);
    const left = (await store.readHints([NOT_OWNED], 1000)).filter((hint) => hint.seq === seq);
    assert.deepEqual(left, [{ seq, slot: NOT_OWNED, dueMs: T0 + 2000 }]);
  });

  it('resets the next attempt of targets waiting out a backoff when the due time moves', async () => {
    counter++;
    const id = `u${counter}`;
    const [outcome] = await store.insertBatch(
      [
        {
          app: 'app1',
          id,
          slot: OWNED,
          topic: '',
          key: null,
          payload: Buffer.from('{}'),
          payloadEncoding: 'json',
          headers: {},
          deliverAtMs: T0,
          fingerprint: `fp-${id}`,
          targets: [
            {
              type: 'http',
              url: 'https://example.com/',
              method: 'POST',
              headers: {},
              timeoutMs: 1000,
              name: null,
              envelope: false,
              expectBody: null,
            },
          ],
          retry: null,
          contentType: null,
        },
      ],
      { ownedEpochs: leases, hintBeforeMs: 0 },
    );
    assert.equal(outcome?.kind, 'created');
    const seq = outcome.kind === 'created' ? outcome.seq : -1;
    await store.claim([{ seq, slot: OWNED }], leases, T0);
    await store.settleTargets(
      [
        {
          ref: { seq, slot: OWNED },
          state: 'scheduled',
          deliverAtMs: T0 + 60_000,
          targetStates: [
            {
              status: 'pending',
              attempts: 1,
              nextAttemptAtMs: T0 + 60_000,
              lastError: 'HTTP 503',
              lastStatus: 503,
              finishedAtMs: null,
            },
          ],
          countedAttempts: 1,
          lastError: 'HTTP 503',
          attempts: [],
        },
      ],
      leases,
      T0 + 10,
    );
    const before = await store.get('app1', id);
    assert.equal(before?.targetStates?.[0]?.nextAttemptAtMs, T0 + 60_000);
    assert.equal(before?.firstDeliverAtMs, T0);
    const targets = before?.targets ?? [];
    await store.updateScheduled(
      'app1',
      id,
      1,
      { ...change('x', T0 + 100), topic: '', key: null, targets },
      { ownedEpochs: leases, hintBeforeMs: 0 },
    );
    const after = await store.get('app1', id);
    assert.equal(after?.deliverAtMs, T0 + 100);
    assert.equal(after?.firstDeliverAtMs, null);
    assert.equal(after?.targetStates?.[0]?.nextAttemptAtMs, null);
    assert.equal(after?.targetStates?.[0]?.attempts, 1, 'the attempts made so far are kept');
  });
});
