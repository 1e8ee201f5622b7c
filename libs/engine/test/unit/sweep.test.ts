/**
 * The safety-net sweep (libs/engine/src/slots/sweep.ts): overdue messages nothing holds, and
 * claims nothing accounts for. The periodic sweep is kept out of the way (a long interval); the
 * tests run `engine.sweep()` themselves.
 */
import assert from 'node:assert/strict';
import { PublishError } from '@hourglass/core';
import { assertDeliveredOnce, harness, message, metricValue } from './harness';

const NO_PERIODIC_SWEEP = { sweepIntervalMs: 600_000 };

describe('DelayEngine: the sweep', () => {
  it('delivers a stranded overdue message that nothing holds, and counts it', async () => {
    const h = await harness({ ...NO_PERIODIC_SWEEP, sweepGraceMs: 100 });
    // Committed after the takeover's load, with no hint (a bug, or a reply lost after a commit).
    const [seq] = h.store.seed([message('stranded', Date.now() - 1000, 1)]);
    assert.equal(h.engine.heldMessages, 0);
    assert.equal(h.store.hintCount, 0);

    await h.engine.sweep();
    assert.equal(await metricValue(h, 'hourglass_sweep_found_total', { kind: 'stranded' }), 1);
    assert.ok((await metricValue(h, 'hourglass_oldest_overdue_seconds')) >= 0.9);
    await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered');
    assertDeliveredOnce(h, ['stranded']);

    await h.engine.sweep();
    assert.equal(await metricValue(h, 'hourglass_sweep_found_total', { kind: 'stranded' }), 1);
    assert.equal(await metricValue(h, 'hourglass_sweep_found_total', { kind: 'backfill' }), 0);
  });

  it('leaves alone an overdue message that waits for its target to answer', async () => {
    // The probe comes long after the test.
    const h = await harness({
      ...NO_PERIODIC_SWEEP,
      sweepGraceMs: 100,
      retryInitialMs: 60_000,
      probeMaxMs: 60_000,
    });
    h.publisher.failIf(() => new PublishError('broker not available', true));
    // Overdue by more than the grace already when accepted.
    const [seq] = await h.insert([message('parked', Date.now() - 500, 1)]);
    await h.events.until(
      () => h.store.callsOf('releaseClaims').some((call) => call.changed.includes(seq!)),
      'released after the outage',
    );

    await h.engine.sweep();
    assert.equal(await metricValue(h, 'hourglass_parked_messages'), 1);
    assert.equal(await metricValue(h, 'hourglass_sweep_found_total'), 0);
    assert.equal(h.engine.heldMessages, 0, 'the sweep put a parked message back in the wheel');
    assert.equal(h.store.stateOf(seq!), 'scheduled');
  });

  it('releases a row left delivering that no claim accounts for after two sweeps, and delivers it', async () => {
    const h = await harness(NO_PERIODIC_SWEEP);
    // Claimed under the engine's current epoch, and its mark or release lost.
    const [seq] = h.store.seed([message('stuck', Date.now() - 1000, 6)]);
    const row = h.store.row(seq!);
    row.state = 'delivering';
    row.claimedEpoch = h.store.epochs.get(6)!;

    await h.engine.sweep();
    assert.equal(row.state, 'delivering', 'released after a single sweep');
    assert.equal(h.store.callsOf('releaseClaims').length, 0);
    assert.equal(await metricValue(h, 'hourglass_messages_stuck_delivering'), 1);
    assert.equal(
      await metricValue(h, 'hourglass_sweep_found_total', { kind: 'stuck_delivering' }),
      0,
    );

    await h.engine.sweep();
    assert.equal(
      await metricValue(h, 'hourglass_sweep_found_total', { kind: 'stuck_delivering' }),
      1,
    );
    await h.events.until(() => row.state === 'delivered', 'released and delivered');
    const [release] = h.store.callsOf('releaseClaims');
    assert.deepEqual(
      [release!.changed, release!.error, release!.giveUp],
      [[seq], 'claim abandoned; found by the sweep', false],
    );
    assertDeliveredOnce(h, ['stuck']);
    assert.equal(row.attempts, 1);
    assert.equal(await metricValue(h, 'hourglass_sweep_found_total', { kind: 'stranded' }), 0);
  });

  it('leaves alone a row being delivered by a claim of this node, however many sweeps see it', async () => {
    const h = await harness(NO_PERIODIC_SWEEP);
    const ack = h.publisher.holdAcks();
    const [seq] = await h.insert([message('in-flight', Date.now() + 30, 6)]);
    await h.events.until(() => h.publisher.waiting === 1, 'the delivery, waiting for its answer');

    for (let k = 0; k < 3; k++) await h.engine.sweep();
    assert.equal(h.store.callsOf('findDelivering').length, 3);
    assert.equal(h.store.callsOf('releaseClaims').length, 0);
    assert.equal(await metricValue(h, 'hourglass_messages_stuck_delivering'), 0);
    ack();
    await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered');
    assertDeliveredOnce(h, ['in-flight']);
    assert.equal(await metricValue(h, 'hourglass_sweep_found_total'), 0);
  });
});
