/**
 * Taking slots over (libs/engine/src/slots/loader.ts): a takeover load that fails, taking over a
 * slot the engine already fires, a late acquisition of a replaced owner, and a takeover backlog
 * larger than the engine may hold at once.
 */
import assert from 'node:assert/strict';
import { OWNED, assertDeliveredOnce, harness, message, metricValue, range } from './harness';

describe('DelayEngine: taking slots over', () => {
  describe('a takeover load that fails', () => {
    it('is retried on the next loader step: the overdue messages are delivered', async () => {
      // The sweep would find them too, but only after its interval: keep it out of the way, so
      // what delivers them is the loader's retry.
      const h = await harness({ loaderIntervalMs: 50, sweepIntervalMs: 600_000 }, []);
      const t = Date.now();
      const ids = range(20).map((n) => `overdue-${n}`);
      h.store.seed(ids.map((id, n) => message(id, t - 1000 - n, n % 8)));
      h.store.failNext('loadDue', 'before');

      const leases = await h.engine.acquireSlots(OWNED);
      // Resolved with the leases once the epochs were raised, although the load failed.
      assert.deepEqual(
        leases.map((lease) => lease.slot),
        OWNED,
      );
      for (const lease of leases) assert.equal(h.store.epochs.get(lease.slot), lease.epoch);
      assert.deepEqual(h.engine.ownedSlots(), leases);
      const [failed] = h.store.callsOf('loadDue');
      assert.equal(failed!.failed, 'before');
      assert.equal(h.engine.heldMessages, 0, 'nothing loaded yet');
      assert.equal(await metricValue(h, 'hourglass_slot_load_failures_total'), 1);

      await h.events.until(
        () => h.store.count('delivered') === ids.length,
        'the overdue messages delivered once the load is retried',
      );
      assertDeliveredOnce(h, ids);
      const retried = h.store.callsOf('loadDue').filter((call) => call.tick > failed!.tick);
      assert.ok(retried.length > 0 && retried.every((call) => call.failed === undefined));
      assert.equal(await metricValue(h, 'hourglass_sweep_found_total'), 0);
    });

    it('is retried when its second part fails: the messages due later are delivered, each once', async () => {
      const h = await harness({ loaderIntervalMs: 50, sweepIntervalMs: 600_000 }, []);
      const t = Date.now();
      const overdue = range(10).map((n) => `overdue-${n}`);
      const later = range(10).map((n) => `later-${n}`);
      h.store.seed([
        ...overdue.map((id, n) => message(id, t - 500, n % 8)),
        ...later.map((id, n) => message(id, t + 300 + n, n % 8)),
      ]);
      // The overdue part loads; the part due within the horizon fails.
      h.store.failNext('loadDue', 'ok', 'before');
      await h.engine.acquireSlots(OWNED);
      assert.deepEqual(
        h.store.callsOf('loadDue').map((call) => call.failed),
        [undefined, 'before'],
      );

      await h.events.until(
        () => h.store.count('delivered') === overdue.length + later.length,
        'every message delivered',
      );
      // The retry loaded the overdue part again: the wheel held those twice, the claim took them once.
      assertDeliveredOnce(h, [...overdue, ...later]);
      assert.equal(h.engine.heldMessages, 0);
    });
  });

  it('takes a slot it already fires over again, under a new epoch, and delivers its messages once', async () => {
    // `held` is claimed at once and held until its due time; `wheeled` waits in the wheel.
    const h = await harness({ claimAheadMs: 1000 });
    const t = Date.now();
    const [held, wheeled] = await h.insert([
      message('held', t + 800, 2),
      message('wheeled', t + 1300, 2),
    ]);
    await h.events.until(() => h.store.stateOf(held!) === 'delivering', 'claimed ahead');
    const before = h.engine.ownedSlots().find((lease) => lease.slot === 2)!.epoch;

    const leases = await h.engine.acquireSlots([2]);
    assert.equal(leases.length, 1);
    const epoch = leases[0]!.epoch;
    assert.ok(epoch > before, `re-acquired under epoch ${epoch}, was ${before}`);
    assert.equal(h.store.epochs.get(2), epoch);
    assert.deepEqual(
      h.engine.ownedSlots().find((lease) => lease.slot === 2),
      { slot: 2, epoch },
    );
    assert.ok(Date.now() < t + 800, 'taken over before `held` was due: make it later');
    // The claim held under the old epoch was put back (and the takeover would reset it anyway).
    assert.equal(h.store.row(held!).claimedEpoch, null);
    assert.ok(
      h.store
        .callsOf('releaseClaims')
        .some((call) => call.changed.includes(held!) && call.error?.includes('handed over')),
    );

    await h.events.until(
      () => h.store.count('delivered', [held!, wheeled!]) === 2,
      'both delivered under the new epoch',
    );
    // Marks are fenced: a row marked delivered now was claimed under the slot's new epoch.
    assertDeliveredOnce(h, ['held', 'wheeled']);
    assert.equal(h.engine.heldMessages, 0);
  });

  it('refuses a late acquisition of a replaced owner: the newer owner keeps its epoch and fires the slot', async () => {
    const t = Date.now();
    const a = await harness({}, []);
    a.store.seed([message('seeded', t + 300, 3)]);
    await a.engine.acquireSlots([3], 5);
    assert.deepEqual(a.engine.ownedSlots(), [{ slot: 3, epoch: 5 }]);
    const b = await harness({}, [3], { shareStoreWith: a, minEpoch: 9 });
    assert.deepEqual(b.engine.ownedSlots(), [{ slot: 3, epoch: 9 }]);

    // A's acquisition with its old revision arrives late (a retry, or a slow coordinator).
    const late = await a.engine.acquireSlots([3], 5);
    assert.deepEqual(late, [], 'refused: missing from the result');
    assert.equal(a.store.epochs.get(3), 9, "the newer owner's epoch is unchanged");
    assert.deepEqual(a.engine.ownedSlots(), [], 'A does not fire the slot');
    assert.equal(await metricValue(a, 'hourglass_slot_acquisitions_refused_total'), 1);
    assert.equal(a.engine.heldMessages, 0);

    // B keeps delivering the slot: what it loaded, what it accepts, and what A accepts for it
    // (A owns nothing, so its insert leaves a hint for the owner).
    await b.insert([message('via-b', Date.now() + 50, 3)]);
    await a.insert([message('via-a', Date.now() + 50, 3)]);
    const ids = ['seeded', 'via-b', 'via-a'];
    await b.events.until(
      () => ids.every((id) => b.store.stateOf(b.seq(id)) === 'delivered'),
      'the slot delivered by its newer owner',
    );
    assertDeliveredOnce(b, ids);
    assert.equal(a.publisher.attempts.length, 0, 'A produced something of the slot');
    assert.deepEqual(b.engine.ownedSlots(), [{ slot: 3, epoch: 9 }]);
    assert.equal(await metricValue(b, 'hourglass_slot_acquisitions_refused_total'), 0);
  });

  describe('memory', () => {
    it('loads at most overdueLoadLimit of a takeover backlog at once; the sweep backfills the rest', async function () {
      // 5,000 deliveries in batches of 100 with their marks: a second or two, more on a busy machine.
      this.timeout(30_000);
      const limit = 1000;
      const h = await harness({ overdueLoadLimit: limit, loaderIntervalMs: 20 }, []);
      const t = Date.now();
      const ids = range(5000).map((n) => `backlog-${n}`);
      // A long outage's backlog: overdue by far more than the sweep's grace.
      h.store.seed(ids.map((id, n) => message(id, t - 60_000 + n, n % 8)));

      await h.engine.acquireSlots(OWNED);
      assert.ok(h.engine.heldMessages <= limit, `${h.engine.heldMessages} held after acquisition`);
      let maxHeld = h.engine.heldMessages;
      // Checked on every store call and produce until all are delivered.
      await h.events.until(
        () => {
          maxHeld = Math.max(maxHeld, h.engine.heldMessages);
          return h.store.count('delivered') === ids.length;
        },
        'the whole backlog delivered',
        25_000,
      );
      assert.ok(maxHeld <= limit, `the wheel held ${maxHeld} messages at once`);
      assertDeliveredOnce(h, ids);
      assert.ok((await metricValue(h, 'hourglass_sweep_found_total', { kind: 'backfill' })) > 0);
      assert.equal(await metricValue(h, 'hourglass_sweep_found_total', { kind: 'stranded' }), 0);
    });

    it('does not queue loader steps while one waits: the timer adds no second one', async () => {
      // The hint drain runs on its own timer and reads the store each time: its calls tell the
      // test how many loader intervals have passed, without a sleep.
      const h = await harness({ loaderIntervalMs: 20, hintDrainIntervalMs: 20 });
      const acquisitions = h.store.callsOf('acquireSlots').length;
      const openLoad = h.store.hold('loadDue');
      await h.events.until(() => h.store.waitingAt('loadDue') === 1, 'a horizon step, waiting');
      const reads = h.store.callsOf('readHints').length;
      await h.events.until(
        () => h.store.callsOf('readHints').length >= reads + 10,
        'ten hint drain intervals (as long as ten loader intervals)',
      );
      assert.equal(h.store.waitingAt('loadDue'), 1);

      // An acquisition goes into the loader's queue now. If the timer had queued a step per
      // interval, they would all come first, each with a load of its own; without, the
      // acquisition runs right after the step that waits.
      let acquired = false;
      const acquiring = h.engine.acquireSlots([8]).then(() => (acquired = true));
      const openNext = h.store.hold('loadDue');
      openLoad();
      await h.events.until(
        () => h.store.waitingAt('loadDue') === 1,
        'the load after the step that waited',
      );
      assert.equal(
        h.store.callsOf('acquireSlots').length,
        acquisitions + 1,
        'a queued horizon step ran before the acquisition',
      );
      assert.equal(acquired, false);
      openNext();
      await acquiring;
      assert.ok(h.engine.ownedSlots().some((lease) => lease.slot === 8));
    });
  });
});
