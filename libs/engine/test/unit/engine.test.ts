/**
 * DelayEngine against in-memory fakes of its ports (./fakes.ts, set up by ./harness.ts), on the
 * real clock: messages are due tens of milliseconds ahead and the tests await events the fakes
 * signal (a row changing state, a produce being made or acked, a call waiting at a gate), never
 * a sleep.
 */
import assert from 'node:assert/strict';
import { HourglassError, PublishError } from '@hourglass/core';
import {
  APP,
  CALLER as caller,
  OWNED,
  assertDeliveredOnce,
  harness,
  message,
  range,
  service,
} from './harness';

describe('DelayEngine (fake store and publisher)', () => {
  it('publishes each message once and never before it is due, over a spread of due times', async () => {
    const h = await harness({}, []);
    // Loaded when the slots are acquired: from 200 ms overdue to 400 ms ahead.
    const t0 = Date.now();
    const seeded = range(100).map((n) =>
      message(`seeded-${n}`, t0 - 200 + ((n * 37) % 600), n % 8),
    );
    h.store.seed(seeded);
    await h.engine.acquireSlots(OWNED);
    // Accepted by this node and wheeled directly: from 100 ms overdue to 400 ms ahead, some at
    // the same millisecond.
    const t1 = Date.now();
    const inserted = range(200).map((n) =>
      message(`inserted-${n}`, t1 - 100 + ((n * 53) % 500), (n * 3) % 8),
    );
    for (let i = 0; i < inserted.length; i += 50) await h.insert(inserted.slice(i, i + 50));
    const all = [...seeded, ...inserted];
    assert.ok(
      all.some((m) => m.deliverAtMs < t0 - 100),
      'some are well overdue',
    );

    await h.events.until(() => h.store.count('delivered') === all.length, 'all delivered');

    assertDeliveredOnce(
      h,
      all.map((m) => m.id),
    );
    // What was produced is the message, with the Hourglass headers.
    const sample = inserted[7]!;
    const record = h.publisher.attempts
      .flatMap((attempt) => attempt.records)
      .find((r) => r.headers['hourglass-id'] === sample.id)!;
    assert.deepEqual(record, {
      topic: sample.topic,
      key: sample.key,
      value: sample.payload,
      headers: {
        'x-test': sample.id,
        'hourglass-id': sample.id,
        'hourglass-app': APP,
        'hourglass-deliver-at': String(sample.deliverAtMs),
      },
    });
    // Claims ask for nothing due later than claimAheadMs from now.
    for (const claim of h.store.callsOf('claim')) {
      assert.ok(
        claim.nowMs! <= claim.at + h.options.claimAheadMs!,
        `claim asked for ${claim.nowMs! - claim.at} ms ahead`,
      );
    }
    // On time: generous bounds, only to catch a fire timer that is not armed.
    const late = Math.max(...h.publisher.acked().map((r) => r.at - Math.max(r.deliverAtMs, t1)));
    assert.ok(late < 1000, `a message was produced ${late} ms late`);
    assert.equal(h.engine.heldMessages, 0);
  });

  describe('cancel', () => {
    it('wins before the claim window: the message leaves the wheel and is never published', async () => {
      const h = await harness();
      const t = Date.now();
      const [viaService, inStore, sentinel] = await h.insert([
        message('cancel-me', t + 150, 3),
        message('cancel-in-store', t + 150, 3),
        message('sentinel', t + 200, 3),
      ]);
      assert.equal(h.engine.heldMessages, 3);

      assert.deepEqual(await service(h).cancel(caller, 'cancel-me'), {
        id: 'cancel-me',
        state: 'cancelled',
      });
      assert.equal(h.engine.heldMessages, 2, 'a cancel through the service forgets the wheel item');
      // Cancelled behind the engine's back (as on another node): it stays in the wheel, and the
      // store's state keeps it from being produced.
      const direct = await h.store.cancel(APP, 'cancel-in-store', Date.now());
      assert.equal(direct.kind, 'cancelled');
      assert.equal(h.engine.heldMessages, 2);

      await h.events.until(() => h.store.stateOf(sentinel!) === 'delivered', 'sentinel delivered');
      const claimedRefs = h.store.callsOf('claim').flatMap((call) => call.refs.map((r) => r.seq));
      assert.ok(!claimedRefs.includes(viaService!), 'a forgotten message reached a claim');
      assert.ok(claimedRefs.includes(inStore!), 'the message still in the wheel went to a claim');
      const claimedSeqs = h.store.callsOf('claim').flatMap((call) => call.changed);
      assert.ok(!claimedSeqs.includes(inStore!), 'a cancelled message was claimed');
      assert.equal(h.publisher.attemptsOf('cancel-me').length, 0);
      assert.equal(h.publisher.attemptsOf('cancel-in-store').length, 0);
      assert.equal(h.store.stateOf(viaService!), 'cancelled');
      assert.equal(h.store.stateOf(inStore!), 'cancelled');
      assertDeliveredOnce(h, ['sentinel']);
      assert.equal(h.engine.heldMessages, 0);
    });

    it('is refused once the message is claimed, and the message is delivered', async () => {
      const h = await harness({ claimAheadMs: 200 });
      const due = Date.now() + 250;
      const [seq] = await h.insert([message('too-late', due, 2)]);
      await h.events.until(() => h.store.stateOf(seq!) === 'delivering', 'claimed');
      await assert.rejects(
        service(h).cancel(caller, 'too-late'),
        (error) => error instanceof HourglassError && error.code === 'delivery_in_progress',
      );
      const [cancel] = h.store.callsOf('cancel');
      assert.ok(cancel!.at < due, 'the cancel came before the due time');
      await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered');
      assertDeliveredOnce(h, ['too-late']);
    });
  });

  describe('produce failures', () => {
    it('retries retriable failures by probing the target, delivers once and marks only after the ack', async () => {
      const h = await harness({ retryInitialMs: 10, retryMaxMs: 40 });
      const down = () => new PublishError('broker not available', true);
      h.publisher.failNext(down(), down(), down());
      const [seq] = await h.insert([message('flaky', Date.now() + 50, 1)]);

      const failed = () => h.publisher.attemptsOf('flaky').filter((a) => a.error).length;
      await h.events.until(() => failed() === 3, 'three failed produces');
      const ack = h.publisher.holdAcks();
      await h.events.until(
        () => h.publisher.waiting === 1,
        'the fourth produce, waiting for its ack',
      );
      // Produced, not acknowledged: nothing may be marked yet.
      assert.equal(h.store.stateOf(seq!), 'delivering');
      assert.equal(h.store.callsOf('markDelivered').length, 0);
      ack();
      await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered');

      assertDeliveredOnce(h, ['flaky']);
      const attempts = h.publisher.attemptsOf('flaky');
      assert.equal(attempts.length, 4);
      // Each failure is released back to scheduled before the message is tried again...
      const releases = h.store.callsOf('releaseClaims');
      assert.deepEqual(
        releases.map((r) => [r.changed, r.giveUp, r.error]),
        [1, 2, 3].map(() => [[seq], false, 'broker not available']),
      );
      // ...and tried again only when a probe of the target comes, at least retryInitialMs later.
      for (let k = 0; k < 3; k++) {
        const waited = attempts[k + 1]!.at - releases[k]!.at;
        assert.ok(waited >= 10, `retry ${k + 1} after ${waited} ms, probe delay 10 ms`);
      }
      // An outage is not an attempt: only the delivery counts.
      assert.equal(h.store.row(seq!).attempts, 1);
    });

    it('gives up a non-retriable failure after maxAttempts: the message is failed', async () => {
      const h = await harness({ maxAttempts: 3 });
      h.publisher.failIf((records) =>
        records.some((r) => r.topic === 'no-such-topic')
          ? new PublishError('unknown topic', false)
          : undefined,
      );
      const [seq] = await h.insert([message('doomed', Date.now() + 30, 4, 'no-such-topic')]);
      await h.events.until(() => h.store.stateOf(seq!) === 'failed', 'failed');
      assert.equal(h.engine.heldMessages, 0, 'not wheeled again');
      // Something due later goes out, so the failed one had every chance to be retried.
      const [after] = await h.insert([message('after', Date.now() + 60, 4)]);
      await h.events.until(
        () => h.store.stateOf(after!) === 'delivered',
        'a later message delivered',
      );

      assert.equal(h.publisher.attemptsOf('doomed').length, 3);
      assert.equal(h.publisher.ackedCount('doomed'), 0);
      const row = h.store.row(seq!);
      assert.deepEqual([row.attempts, row.lastError], [3, 'unknown topic']);
      assert.notEqual(row.finishedAtMs, null);
      assert.deepEqual(
        h.store.callsOf('releaseClaims').map((r) => [r.changed, r.giveUp]),
        [
          [[seq], false],
          [[seq], false],
          [[seq], true],
        ],
      );
      assert.ok(!row.history.some((change) => change.state === 'delivered'));
    });
  });

  it('publishes a message the wheel holds twice (inserted, then loaded) once', async () => {
    const h = await harness({}, []);
    // The slots' load waits at the store while an insert commits under the new epochs, so the
    // insert wheels the message and the load, reading afterwards, wheels it again.
    const openLoad = h.store.hold('loadDue');
    const acquiring = h.engine.acquireSlots(OWNED);
    await h.events.until(() => h.store.waitingAt('loadDue') === 1, 'the load, waiting');
    const [seq] = await h.insert([message('twice', Date.now() + 150, 5)]);
    openLoad();
    await acquiring;
    assert.equal(h.engine.heldMessages, 2, 'held twice');

    await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered');
    const refs = h.store.callsOf('claim').flatMap((call) => call.refs.filter((r) => r.seq === seq));
    assert.equal(refs.length, 2, 'both copies went to a claim');
    assertDeliveredOnce(h, ['twice']);
    assert.equal(h.store.row(seq!).attempts, 1);
    assert.equal(h.engine.heldMessages, 0);
  });

  describe('a claim whose outcome is unknown', () => {
    it('is released, then claimed again: each message is delivered once', async () => {
      const h = await harness();
      h.store.failNext('claim', 'after');
      const due = Date.now() + 60;
      const ids = range(5).map((n) => `unknown-${n}`);
      const seqs = await h.insert(ids.map((id, n) => message(id, due, n)));
      await h.events.until(() => h.store.count('delivered', seqs) === 5, 'all delivered');

      const [first, ...later] = h.store.callsOf('claim');
      assert.equal(first!.failed, 'after');
      assert.deepEqual([...first!.changed].sort(), seqs, 'the failed claim did commit');
      const [release] = h.store.callsOf('releaseClaims');
      assert.equal(release!.error, 'claim outcome unknown');
      assert.deepEqual([...release!.changed].sort(), seqs, 'released back to scheduled');
      assert.ok(release!.tick > first!.tick);
      assert.ok(later.length > 0 && later.every((claim) => claim.tick > release!.tick));
      assertDeliveredOnce(h, ids);
      for (const seq of seqs) assert.equal(h.store.row(seq).attempts, 1);
    });

    it('is re-wheeled only after its release succeeded, retrying the release', async () => {
      const h = await harness();
      h.store.failNext('claim', 'after');
      h.store.failNext('releaseClaims', 'before');
      const [seq] = await h.insert([message('stubborn', Date.now() + 40, 6)]);
      await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered');

      const releases = h.store.callsOf('releaseClaims');
      assert.deepEqual(
        releases.map((r) => [r.failed, r.changed]),
        [
          ['before', []],
          [undefined, [seq]],
        ],
      );
      // The engine pauses 100 ms (a setTimeout, which may fire a millisecond early by Date.now).
      const pause = releases[1]!.at - releases[0]!.at;
      assert.ok(pause >= 98, `the release was retried after ${pause} ms`);
      const claims = h.store.callsOf('claim');
      assert.equal(claims.length, 2);
      assert.ok(
        claims[1]!.tick > releases[1]!.tick,
        'claimed again before the release went through',
      );
      assertDeliveredOnce(h, ['stubborn']);
    });
  });

  describe('releaseSlots', () => {
    it('stops firing the slots, puts their held claims back and waits for their produce and marks', async () => {
      const h = await harness({ claimAheadMs: 300 });
      const t = Date.now();
      const [produced, held, wheeled] = await h.insert([
        message('produced', t + 50, 1),
        message('held', t + 250, 1),
        message('wheeled', t + 600, 1),
      ]);
      const [other] = await h.insert([message('other-slot', t + 700, 2)]);
      // `produced` is being produced (its ack held back) while `held` waits for its due time.
      const ack = h.publisher.holdAcks();
      await h.events.until(() => h.publisher.waiting === 1, 'the produce of the first message');
      assert.equal(h.store.stateOf(held!), 'delivering');

      let released = false;
      const releasing = h.engine.releaseSlots([1]).then(() => (released = true));
      await h.events.until(() => h.store.stateOf(held!) === 'scheduled', 'the held claim released');
      assert.equal(h.store.row(held!).claimedEpoch, null);
      const mark = h.store.hold('markDelivered');
      ack();
      await h.events.until(() => h.store.waitingAt('markDelivered') === 1, 'the mark');
      assert.equal(released, false, 'releaseSlots resolved before its slot was marked');
      mark();
      await releasing;
      assert.equal(h.store.stateOf(produced!), 'delivered', 'the acked message is marked');
      assert.equal(h.store.stateOf(held!), 'scheduled');
      assert.equal(h.store.stateOf(wheeled!), 'scheduled');
      assert.equal(h.engine.heldMessages, 1, 'only the other slot is in the wheel');
      assert.deepEqual(
        h.engine.ownedSlots().map((lease) => lease.slot),
        OWNED.filter((slot) => slot !== 1),
      );

      // Past every due time of slot 1: nothing more of it was produced.
      await h.events.until(() => h.store.stateOf(other!) === 'delivered', 'the other slot fires');
      assert.equal(h.publisher.attemptsOf('held').length, 0);
      assert.equal(h.publisher.attemptsOf('wheeled').length, 0);
      assertDeliveredOnce(h, ['produced', 'other-slot']);

      // The next owner (here: this node again) fires them.
      await h.engine.acquireSlots([1]);
      await h.events.until(
        () => h.store.count('delivered', [held!, wheeled!]) === 2,
        'slot 1 delivered after it was acquired again',
      );
      assertDeliveredOnce(h, ['produced', 'held', 'wheeled']);
    });

    it('publishes nothing that a claim in flight took of a released slot', async () => {
      const h = await harness({ claimAheadMs: 300 });
      const t = Date.now();
      const [held] = await h.insert([message('held', t + 250, 1)]);
      await h.events.until(() => h.store.stateOf(held!) === 'delivering', 'the first claim');
      const openClaims = h.store.hold('claim');
      const [inFlight] = await h.insert([message('in-flight', t + 200, 1)]);
      await h.events.until(() => h.store.waitingAt('claim') === 1, 'the second claim, waiting');

      let released = false;
      const releasing = h.engine.releaseSlots([1]).then(() => (released = true));
      await h.events.until(() => h.store.stateOf(held!) === 'scheduled', 'the held claim released');
      assert.equal(released, false, 'releaseSlots did not wait for the claim in flight');
      openClaims();
      await releasing;
      // The claim committed after the slot was let go: the engine drops what it returned, and the
      // row stays claimed until the slot's next acquisition resets it (the takeover's job).
      assert.equal(h.store.stateOf(inFlight!), 'delivering');
      const [other] = await h.insert([message('other-slot', t + 400, 2)]);
      await h.events.until(() => h.store.stateOf(other!) === 'delivered', 'the other slot fires');
      assert.ok(Date.now() > t + 250, 'past the due times of slot 1');
      assert.equal(h.publisher.attemptsOf('in-flight').length, 0);
      assert.equal(h.publisher.attemptsOf('held').length, 0);

      await h.engine.acquireSlots([1]);
      await h.events.until(
        () => h.store.count('delivered', [held!, inFlight!]) === 2,
        'delivered by the next owner',
      );
      assertDeliveredOnce(h, ['held', 'in-flight', 'other-slot']);
    });
  });

  describe('stop', () => {
    it('produces what it claimed at its due time, claims nothing more, and resolves', async () => {
      const h = await harness({ claimAheadMs: 200 });
      const t = Date.now();
      const [first, second, later] = await h.insert([
        message('claimed-1', t + 100, 1),
        message('claimed-2', t + 150, 2),
        message('not-claimed', t + 450, 3),
      ]);
      await h.events.until(
        () => h.store.count('delivering', [first!, second!]) === 2,
        'both claimed ahead of their due time',
      );
      await h.engine.stop();

      assert.ok(Date.now() >= t + 150, 'stop resolved before the claimed messages were due');
      assertDeliveredOnce(h, ['claimed-1', 'claimed-2']);
      assert.equal(h.store.stateOf(later!), 'scheduled');
      assert.equal(h.publisher.attemptsOf('not-claimed').length, 0);
      assert.ok(!h.store.callsOf('claim').some((call) => call.refs.some((r) => r.seq === later)));
    });

    it('releases a claimed message whose produce fails while stopping', async () => {
      const h = await harness({ claimAheadMs: 200 });
      const [seq] = await h.insert([message('unlucky', Date.now() + 60, 1)]);
      await h.events.until(() => h.store.stateOf(seq!) === 'delivering', 'claimed');
      h.publisher.failNext(new PublishError('broker not available', true));
      await h.engine.stop();
      assert.equal(h.publisher.attemptsOf('unlucky').length, 1);
      assert.equal(h.store.stateOf(seq!), 'scheduled');
      assert.equal(h.store.row(seq!).lastError, 'broker not available');
    });
  });

  describe('bursts', () => {
    it('delivers 20,000 messages due at the same millisecond, marking them in few statements', async function () {
      this.timeout(60_000);
      const h = await harness({ fireBatchSize: 1000, fireConcurrency: 4 }, []);
      // Far enough ahead that the setup below finishes first on a loaded 2-core machine.
      const due = Date.now() + 4000;
      const ids = range(20_000).map((n) => `burst-${n}`);
      // Half loaded (in pages) when the slots are acquired, half inserted through the engine.
      h.store.seed(ids.slice(0, 10_000).map((id, n) => message(id, due, n % 8)));
      await h.engine.acquireSlots(OWNED);
      for (let i = 10_000; i < 20_000; i += 1000) {
        await h.insert(ids.slice(i, i + 1000).map((id, n) => message(id, due, n % 8)));
      }
      assert.equal(h.engine.heldMessages, 20_000);
      assert.ok(Date.now() < due - 25, 'set up before the claims start: make `due` later');

      await h.events.until(() => h.store.count('delivered') === 20_000, 'all delivered', 30_000);
      assertDeliveredOnce(h, ids);
      const claims = h.store.callsOf('claim');
      assert.ok(claims.every((claim) => claim.refs.length <= 1000));
      const marks = h.store.callsOf('markDelivered');
      assert.equal(
        marks.reduce((sum, mark) => sum + mark.changed.length, 0),
        20_000,
      );
      // Marks wait while the backlog is being claimed, then go in few statements: acks that come
      // in while one runs are merged into the next.
      const lastClaim = claims[claims.length - 1]!;
      assert.ok(
        marks.every((mark) => mark.tick > lastClaim.tick),
        'a mark during the backlog',
      );
      const produces = h.publisher.attempts.length;
      assert.ok(
        marks.length <= 6 && marks.length <= produces,
        `${marks.length} mark statements for ${produces} produce requests`,
      );
      assert.equal(h.engine.heldMessages, 0);
    });

    it('marks the acked messages of a burst even when its last claim takes nothing', async () => {
      // The burst ends with a full batch of messages cancelled since they were wheeled. The live
      // ones are acked while the claim of that batch is under way (the engine is backlogged), so
      // their mark waits; that claim then takes nothing, so no produce follows to flush the mark.
      const h = await harness({ fireBatchSize: 50, fireConcurrency: 1, claimAheadMs: 25 });
      const due = Date.now() + 600;
      const live = range(50).map((n) => message(`live-${n}`, due, n % 8));
      const cancelled = range(50).map((n) => message(`gone-${n}`, due, n % 8));
      const liveSeqs = await h.insert(live);
      await h.insert(cancelled);
      for (const m of cancelled)
        assert.equal((await h.store.cancel(APP, m.id, Date.now())).kind, 'cancelled');

      await h.events.until(
        () => h.publisher.acked().length === 50,
        'the live messages produced and acked',
      );
      await h.events.until(
        () => h.store.count('delivered', liveSeqs) === 50,
        'the acked messages marked delivered',
        2000,
      );
      assertDeliveredOnce(
        h,
        live.map((m) => m.id),
      );
    });
  });
});
