/**
 * Fenced mode (libs/engine/src/firing/pipeline.ts, deliverUnderEpochLock): while the coordinator
 * cannot confirm this node's ownership, the engine keeps delivering, but under the store's epoch
 * lock, so once another node raised a slot's epoch nothing more of that slot is delivered here.
 */
import assert from 'node:assert/strict';
import { OWNED, assertDeliveredOnce, harness, message, metricValue } from './harness';

describe('DelayEngine: ownership unconfirmed', () => {
  it('delivers under the epoch lock, and nothing more of a slot once another node raised its epoch', async () => {
    const a = await harness({}, OWNED, { ownershipConfirmed: () => false });
    const [early] = await a.insert([message('early', Date.now() + 50, 2)]);
    await a.events.until(() => a.store.stateOf(early!) === 'delivered', 'delivered meanwhile');
    assertDeliveredOnce(a, ['early']);
    const locks = a.store.callsOf('withEpochLock');
    assert.ok(locks.length > 0, 'delivered without the epoch lock');
    const mark = a.store.callsOf('markDelivered').find((call) => call.changed.includes(early!))!;
    assert.ok(locks.some((lock) => lock.tick < mark.tick));

    // Another node takes slot 2 over while this one still has its messages in the wheel.
    const due = Date.now() + 600;
    await a.insert([message('taken', due, 2), message('kept', due, 3)]);
    const b = await harness({}, [2], { shareStoreWith: a });
    const takeover = a.store.callsOf('acquireSlots').at(-1)!;
    assert.ok(Date.now() < due - 25, 'taken over before the claims: make `due` later');

    await a.events.until(
      () =>
        a.store.stateOf(a.seq('taken')) === 'delivered' &&
        a.store.stateOf(a.seq('kept')) === 'delivered' &&
        a.fenced.length > 0,
      'both delivered, and the lost slot reported',
    );
    assert.equal(a.publisher.attemptsOf('taken').length, 0, 'the old owner produced it');
    const producedByA = a.publisher.attempts
      .filter((attempt) => attempt.tick > takeover.tick)
      .flatMap((attempt) => attempt.records.map((record) => record.headers['hourglass-id']));
    assert.deepEqual(producedByA, ['kept'], 'the old owner produced more than its own slot');
    assertDeliveredOnce(b, ['taken']);
    assertDeliveredOnce(a, ['early', 'kept']);
    assert.equal(b.publisher.attemptsOf('kept').length, 0);
    assert.deepEqual(a.fenced, [[2]]);
    assert.ok(!a.engine.ownedSlots().some((lease) => lease.slot === 2), 'still fires slot 2');
    assert.ok((await metricValue(a, 'hourglass_fenced_claims_total')) > 0);
  });

  it('makes a takeover of the slot wait until its delivery under the lock has answered', async () => {
    const a = await harness({}, OWNED, { ownershipConfirmed: () => false });
    const b = await harness({}, [], { shareStoreWith: a });
    const ack = a.publisher.holdAcks();
    const [seq] = await a.insert([message('locked', Date.now() + 30, 4)]);
    await a.events.until(() => a.publisher.waiting === 1, 'the delivery, waiting for its answer');
    const epoch = a.store.epochs.get(4);
    const acquisitions = a.store.callsOf('acquireSlots').length;

    let acquired = false;
    const acquiring = b.engine.acquireSlots([4]).then((leases) => {
      acquired = true;
      return leases;
    });
    // What is checked is that nothing happens: there is no event to await, so a bounded wait.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(acquired, false, 'the takeover did not wait for the lock');
    assert.equal(a.store.callsOf('acquireSlots').length, acquisitions);
    assert.equal(a.store.epochs.get(4), epoch);

    ack();
    const leases = await acquiring;
    assert.deepEqual(
      leases.map((lease) => lease.slot),
      [4],
    );
    // A marked it inside the lock, before the takeover (which would have reset it) went through.
    const mark = a.store.callsOf('markDelivered').find((call) => call.changed.includes(seq!))!;
    const takeover = a.store.callsOf('acquireSlots').at(-1)!;
    assert.ok(mark.tick < takeover.tick, 'the takeover went through before the mark');
    assert.equal(a.store.stateOf(seq!), 'delivered');
    assertDeliveredOnce(a, ['locked']);
    assert.equal(b.publisher.attemptsOf('locked').length, 0);
    assert.equal(b.engine.heldMessages, 0, 'the new owner loaded a delivered message');
  });
});
