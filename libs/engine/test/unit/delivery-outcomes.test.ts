/**
 * What the engine does with each message's delivery outcome (libs/engine/src/firing/pipeline.ts
 * and retry.ts): one message's failure decides nothing about the others, outages never count as
 * attempts, what waits for a target that was down goes the moment it answers, and a message put
 * back after an outage can be cancelled.
 */
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { HourglassError, PublishError } from '@hourglass/core';
import {
  CALLER,
  assertDeliveredOnce,
  harness,
  message,
  metricValue,
  range,
  service,
} from './harness';

const down = (): PublishError => new PublishError('broker not available', true);

describe('DelayEngine: delivery outcomes', () => {
  it('fails only the messages of a topic the target refuses; the rest of the batch is delivered once', async () => {
    const h = await harness({ maxAttempts: 3 });
    h.publisher.failRecordIf((record) =>
      record.topic === 'missing' ? new PublishError('unknown topic', false) : undefined,
    );
    const due = Date.now() + 80;
    // Due at the same millisecond: one claim, one delivery request.
    const seqs = await h.insert([
      message('orders-1', due, 1),
      message('missing-1', due, 1, 'missing'),
      message('other-app', due, 3, 'orders', 'app2'),
      message('audit-1', due, 4, 'audit'),
      message('missing-2', due, 5, 'missing'),
      message('orders-2', due, 2),
    ]);
    const doomed = [h.seq('missing-1'), h.seq('missing-2')];
    await h.events.until(
      () => h.store.count('failed', doomed) === 2 && h.store.count('delivered') === 4,
      'the refused topic failed, the others delivered',
    );

    const [firstClaim] = h.store.callsOf('claim');
    assert.deepEqual(
      [...firstClaim!.changed].sort((a, b) => a - b),
      seqs,
      'all in one claim batch',
    );
    assert.equal(h.publisher.attempts[0]!.records.length, 6, 'all in one delivery request');
    assertDeliveredOnce(h, ['orders-1', 'audit-1', 'orders-2']);
    assertDeliveredOnce(h, ['other-app'], 'app2');
    for (const id of ['orders-1', 'audit-1', 'orders-2', 'other-app'])
      assert.equal(h.publisher.attemptsOf(id).length, 1, `${id} produced again`);
    for (const seq of doomed) {
      const row = h.store.row(seq);
      assert.deepEqual([row.attempts, row.lastError], [3, 'unknown topic']);
      assert.equal(h.publisher.attemptsOf(row.message.id).length, 3);
      assert.equal(h.publisher.ackedCount(row.message.id), 0);
    }
    // Counted when the release's reply is in; the test saw the row change as it committed.
    await nextTurn();
    assert.equal(await metricValue(h, 'hourglass_messages_failed_total'), 2);
    assert.equal(await metricValue(h, 'hourglass_messages_delivered_total', { app: 'app2' }), 1);
  });

  it('does not count outages as attempts: a refusal after many outages does not fail the message', async () => {
    const h = await harness({ maxAttempts: 3, probeMaxMs: 20 });
    h.publisher.failNext(
      down(),
      down(),
      down(),
      down(),
      down(),
      new PublishError('too big', false),
    );
    const [seq] = await h.insert([message('patient', Date.now() + 30, 2)]);

    await h.events.until(
      () =>
        h.store
          .callsOf('releaseClaims')
          .some((call) => call.error === 'too big' && call.changed.includes(seq!)),
      'the refusal after five outages, released',
    );
    const row = h.store.row(seq!);
    assert.equal(row.state, 'scheduled', 'failed at once after outages and one refusal');
    assert.equal(row.attempts, 1, 'the outages counted as attempts');

    await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered in the end');
    assertDeliveredOnce(h, ['patient']);
    assert.equal(h.publisher.attemptsOf('patient').length, 7);
    assert.equal(row.attempts, 2, 'one refusal and the delivery');
    assert.ok(h.store.callsOf('releaseClaims').every((call) => call.giveUp === false));
    assert.ok(!row.history.some((change) => change.state === 'failed'));
  });

  it('after a partial failure delivers again only what failed: the delivered messages are acked once', async () => {
    const h = await harness();
    // The first request's records of one topic fail (its partition leader moves); the rest of it
    // is delivered.
    h.publisher.failRecordIf((record) =>
      record.topic === 'flaky' && h.publisher.attempts.length === 1
        ? new PublishError('leader not available', true)
        : undefined,
    );
    const due = Date.now() + 60;
    const steady = range(4).map((n) => `steady-${n}`);
    const flaky = range(2).map((n) => `flaky-${n}`);
    await h.insert([
      ...steady.map((id, n) => message(id, due, n)),
      ...flaky.map((id, n) => message(id, due, n, 'flaky')),
    ]);
    const all = [...steady, ...flaky];
    await h.events.until(
      () => all.every((id) => h.store.stateOf(h.seq(id)) === 'delivered'),
      'all delivered',
    );

    const [first] = h.publisher.attempts;
    assert.equal(first!.records.length, all.length, 'one request first');
    assert.deepEqual([...first!.recordErrors.keys()].sort(), flaky);
    assertDeliveredOnce(h, all);
    for (const id of steady)
      assert.equal(h.publisher.attemptsOf(id).length, 1, `${id} produced again`);
    for (const id of flaky) assert.ok(h.publisher.attemptsOf(id).length >= 2);
    // Only the failed ones went back to scheduled; each row was marked once.
    const released = h.store.callsOf('releaseClaims').flatMap((call) => call.changed);
    assert.deepEqual(
      released.sort((a, b) => a - b),
      flaky.map((id) => h.seq(id)).sort((a, b) => a - b),
    );
    const marked = h.store.callsOf('markDelivered').flatMap((call) => call.changed);
    assert.deepEqual(
      marked.sort((a, b) => a - b),
      all.map((id) => h.seq(id)).sort((a, b) => a - b),
    );
  });

  it('delivers everything parked for a target the moment a delivery to it succeeds, long before a probe', async function () {
    // 2,000 messages produced twice; the probe delay below bounds how long it may take.
    this.timeout(20_000);
    const probeMs = 6000;
    const h = await harness({
      retryInitialMs: probeMs,
      probeMaxMs: 10_000,
      fireBatchSize: 500,
      fireConcurrency: 2,
    });
    h.publisher.failIf(() => down());
    const due = Date.now() + 100;
    const ids = range(2000).map((n) => `parked-${n}`);
    for (let i = 0; i < ids.length; i += 500)
      await h.insert(ids.slice(i, i + 500).map((id, n) => message(id, due, n % 8)));
    const released = (): number =>
      h.store.callsOf('releaseClaims').reduce((sum, call) => sum + call.changed.length, 0);
    await h.events.until(() => released() === ids.length, 'every message released', 10_000);
    // The last release was just recorded; the engine parks its messages when its reply is in.
    await nextTurn();
    const firstParkedAt = h.store.callsOf('releaseClaims')[0]!.at;
    assert.equal(await metricValue(h, 'hourglass_parked_messages'), ids.length);
    assert.equal(h.store.count('scheduled'), ids.length);

    // The target answers again; a message that comes due now is the first to reach it.
    h.publisher.openAll();
    await h.insert([message('first-after', Date.now() + 30, 1)]);
    await h.events.until(
      () => h.store.count('delivered') === ids.length + 1,
      'every parked message delivered',
      10_000,
    );
    const doneAt = Date.now();
    // No probe has fired yet: the earliest comes probeMs after the first message was parked.
    assert.ok(
      doneAt < firstParkedAt + probeMs,
      `delivered ${doneAt - firstParkedAt} ms after parking: by a probe, not by the recovery`,
    );
    assertDeliveredOnce(h, [...ids, 'first-after']);
    for (const id of ids) assert.equal(h.store.row(h.seq(id)).attempts, 1);
    assert.equal(await metricValue(h, 'hourglass_parked_messages'), 0);
  });

  describe('cancel of a message being delivered', () => {
    it('is refused with 409 delivery_in_progress; once an outage puts it back, a cancel wins for good', async () => {
      // The probe of the target comes retryInitialMs after the outage: the cancel goes before.
      const h = await harness({ claimAheadMs: 200, retryInitialMs: 300, probeMaxMs: 300 });
      const messages = service(h);
      const ack = h.publisher.holdAcks();
      const [seq] = await h.insert([message('busy', Date.now() + 60, 2)]);
      await h.events.until(() => h.publisher.waiting === 1, 'the delivery, waiting for its answer');
      assert.equal(h.store.stateOf(seq!), 'delivering');

      await assert.rejects(
        messages.cancel(CALLER, 'busy'),
        (error) =>
          error instanceof HourglassError &&
          error.code === 'delivery_in_progress' &&
          error.spec.http === 409,
      );
      assert.equal(h.store.stateOf(seq!), 'delivering');

      // The answer is an outage: the message goes back to scheduled, parked.
      h.publisher.failNext(down());
      ack();
      await h.events.until(
        () => h.store.stateOf(seq!) === 'scheduled',
        'released after the outage',
      );
      assert.deepEqual(await messages.cancel(CALLER, 'busy'), { id: 'busy', state: 'cancelled' });
      const cancelledAt = h.store.callsOf('cancel').at(-1)!.tick;

      // The probe comes for it and claims nothing.
      await h.events.until(
        () =>
          h.store
            .callsOf('claim')
            .some((call) => call.tick > cancelledAt && call.refs.some((ref) => ref.seq === seq)),
        'the probe of the target, claiming the message',
      );
      const [other] = await h.insert([message('after', Date.now() + 30, 2)]);
      await h.events.until(() => h.store.stateOf(other!) === 'delivered', 'a later message');
      assert.equal(h.store.stateOf(seq!), 'cancelled');
      assert.equal(h.publisher.attemptsOf('busy').length, 1);
      assert.equal(h.publisher.ackedCount('busy'), 0);
      assert.ok(
        h.store
          .callsOf('claim')
          .every((call) => !call.changed.includes(seq!) || call.tick < cancelledAt),
      );
    });
  });
});
