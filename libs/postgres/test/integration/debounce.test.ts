/**
 * insertDebounced (migration 006): the debounce key is held by one scheduled, unclaimed message;
 * a claim lets it go, a leading window ends, an existing id is left to the ordinary path.
 */
import assert from 'node:assert/strict';
import type { DebounceSpec, NewMessage } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { PgMessageStore } from '../../src';

const SLOTS = 16;
const T0 = 1_900_000_000_000;

describe('PgMessageStore: debounced inserts (postgres)', () => {
  let db: TestDatabase;
  let store: PgMessageStore;
  let leases: Map<number, number>;
  let counter = 0;

  before(async () => {
    db = await createTestDatabase();
    store = new PgMessageStore({ connectionString: db.connectionString });
    await store.migrate(SLOTS);
    await store.start();
    const all = Array.from({ length: SLOTS }, (_, slot) => slot);
    leases = new Map((await store.acquireSlots(all, 0)).map((l) => [l.slot, l.epoch]));
  });

  after(async () => {
    await store?.stop();
    await db?.drop();
  });

  function message(payload: string, deliverAtMs: number, id = `d${++counter}`): NewMessage {
    return {
      app: 'app1',
      id,
      slot: counter % SLOTS,
      topic: 'orders',
      key: null,
      payload: Buffer.from(JSON.stringify(payload)),
      payloadEncoding: 'json',
      headers: {},
      deliverAtMs,
      fingerprint: `fp-${id}`,
    };
  }

  const context = () => ({ ownedEpochs: leases, hintBeforeMs: 0 });
  const spec = (key: string, mode: DebounceSpec['mode'], windowMs = 1000): DebounceSpec => ({
    key,
    windowMs,
    maxWaitMs: 5000,
    mode,
  });

  it('trailing: merges into the holder, caps the due time at first + maxWait, raises the version', async () => {
    const debounce = spec('cart-1', 'trailing');
    const first = await store.insertDebounced(message('a', T0 + 1000), debounce, T0, context());
    assert.equal(first.kind, 'created');
    const second = await store.insertDebounced(
      message('b', T0 + 4500 + 1000),
      debounce,
      T0 + 4500,
      context(),
    );
    assert.equal(second.kind, 'merged');
    if (second.kind !== 'merged' || first.kind !== 'created') return;
    assert.equal(second.message.id, first.message.id);
    assert.equal(second.message.payload.toString(), '"b"');
    assert.equal(second.message.deliverAtMs, T0 + 5000, 'capped at the first time + maxWaitMs');
    assert.equal(second.message.version, 2);
    assert.equal(second.wheelable, true);
  });

  it('starts a new window once the holder is claimed', async () => {
    const debounce = spec('cart-2', 'trailing');
    const first = await store.insertDebounced(message('a', T0), debounce, T0, context());
    assert.equal(first.kind, 'created');
    if (first.kind !== 'created') return;
    const claimed = await store.claim(
      [{ seq: first.seq, slot: first.message.slot }],
      leases,
      T0 + 1,
    );
    assert.equal(claimed.length, 1);
    const next = await store.insertDebounced(message('b', T0 + 1000), debounce, T0 + 1, context());
    assert.equal(next.kind, 'created');
    // The claim going back (a failed delivery) does not collide with the new holder.
    await store.releaseClaims(
      [{ seq: first.seq, slot: first.message.slot }],
      leases,
      { error: 'down', giveUp: false, countAttempt: false },
      T0 + 2,
    );
    assert.equal((await store.get('app1', first.message.id))?.state, 'scheduled');
  });

  it('leading: keeps the first message for its window, then lets the key go', async () => {
    const debounce = spec('cart-3', 'leading', 1000);
    const first = await store.insertDebounced(message('a', T0 + 60_000), debounce, T0, context());
    assert.equal(first.kind, 'created');
    const within = await store.insertDebounced(
      message('b', T0 + 60_000),
      debounce,
      T0 + 999,
      context(),
    );
    assert.equal(within.kind, 'kept');
    assert.equal(within.kind === 'kept' && within.message.payload.toString(), '"a"');
    const after = await store.insertDebounced(
      message('c', T0 + 60_000),
      debounce,
      T0 + 1000,
      context(),
    );
    assert.equal(after.kind, 'created', 'a new window');
    // Both messages stay scheduled: a leading window decides what is created, not what fires.
    if (first.kind === 'created')
      assert.equal((await store.get('app1', first.message.id))?.state, 'scheduled');
  });

  it('leaves an existing id to the ordinary insert, and keys apart per app', async () => {
    const taken = message('a', T0, 'taken-id');
    await store.insertBatch([taken], context());
    const again = await store.insertDebounced(
      message('a', T0, 'taken-id'),
      spec('cart-4', 'trailing'),
      T0,
      context(),
    );
    assert.deepEqual(again, { kind: 'id_exists' });
    const ours = await store.insertDebounced(
      message('x', T0),
      spec('k', 'trailing'),
      T0,
      context(),
    );
    const theirs = await store.insertDebounced(
      { ...message('y', T0), app: 'app2' },
      spec('k', 'trailing'),
      T0,
      context(),
    );
    assert.equal(ours.kind, 'created');
    assert.equal(theirs.kind, 'created');
  });

  it('hints the owner of a near-due message this node does not own', async () => {
    const slot = 7;
    const id = `hinted-${++counter}`;
    const before = (await store.readHints([slot], 1000)).length;
    const outcome = await store.insertDebounced(
      { ...message('h', T0 + 100, id), slot },
      spec('cart-5', 'trailing'),
      T0,
      { ownedEpochs: new Map(), hintBeforeMs: T0 + 60_000 },
    );
    assert.equal(outcome.kind === 'created' && outcome.wheelable, false);
    assert.equal((await store.readHints([slot], 1000)).length, before + 1);
  });
});
