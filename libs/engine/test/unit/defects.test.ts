/**
 * Store failures the engine must survive without losing or duplicating a message: a hint drain
 * whose delete fails, marks that keep failing, and a failed claim racing a claim of the same
 * message that succeeded.
 */
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { MessageRef } from '@hourglass/core';
import { EngineMetrics } from '../../src';
import { ClaimLedger } from '../../src/firing/claims';
import { MarkQueue } from '../../src/firing/marks';
import type { StoreFailure } from './fakes';
import { Events, FakeStore, TestLogger } from './fakes';
import { OWNED, SLOTS, assertDeliveredOnce, harness, message, metricValue } from './harness';

describe('DelayEngine: store failures', () => {
  describe('wheel hints', () => {
    const cases: Array<[StoreFailure, string]> = [
      ['after', 'commits and its reply is lost'],
      ['before', 'fails'],
    ];
    for (const [failure, what] of cases) {
      it(`are not lost when the drain's delete ${what}: the owner delivers the message once`, async () => {
        // The sweep would find the message too, after its interval: keep it out of the way.
        const owner = await harness({ hintDrainIntervalMs: 50, sweepIntervalMs: 600_000 });
        // Another node, owning nothing: what it accepts leaves a hint for the owner.
        const other = await harness({}, [], { shareStoreWith: owner });
        owner.store.failNext('deleteHints', failure);
        const [seq] = await other.insert([message('hinted', Date.now() + 100, 2)]);

        await owner.events.until(
          () => owner.store.stateOf(seq!) === 'delivered',
          'delivered by the owner',
        );
        await owner.events.until(() => owner.store.hintCount === 0, 'the hint deleted');
        const [first] = owner.store.callsOf('deleteHints');
        assert.equal(first!.failed, failure, 'the first delete of the hint failed');
        assertDeliveredOnce(owner, ['hinted']);
        assert.equal(other.publisher.attempts.length, 0);
        assert.equal(other.engine.heldMessages, 0);
        assert.equal(await metricValue(owner, 'hourglass_sweep_found_total'), 0);
      });
    }
  });

  describe('marking delivered', () => {
    it('is retried until the store takes it: the row ends delivered, not delivering', async () => {
      const h = await harness();
      // Pauses of 100, 200, 400 and 800 ms between the tries.
      h.store.failNext('markDelivered', 'before', 'before', 'before', 'before');
      const [seq] = await h.insert([message('marked-late', Date.now() + 30, 3)]);
      await h.events.until(
        () => h.store.stateOf(seq!) === 'delivered',
        'marked delivered in the end',
      );
      const marks = h.store.callsOf('markDelivered');
      assert.deepEqual(
        marks.map((call) => call.failed),
        ['before', 'before', 'before', 'before', undefined],
      );
      for (let k = 1; k < marks.length; k++) {
        const pause = marks[k]!.at - marks[k - 1]!.at;
        // Each pause doubles (setTimeout may fire a millisecond early by Date.now).
        assert.ok(pause >= 100 * 2 ** (k - 1) - 2, `try ${k + 1} after ${pause} ms`);
      }
      assertDeliveredOnce(h, ['marked-late']);
    });

    // The real pauses grow to 5 s: the engine gave up after 11 tries (about 26 s) before. The mark
    // queue is driven here on its own with pauses that take no time, so that 40 failures in a
    // row cost no wall-clock time.
    it('never gives up while the engine runs, however many tries fail', async () => {
      const events = new Events();
      const store = new FakeStore(events, SLOTS);
      const [seq] = store.seed([message('stubborn-mark', Date.now() - 10, 1)]);
      const [lease] = await store.acquireSlots([1], 0);
      const leases = new Map([[1, lease!.epoch]]);
      const refs: MessageRef[] = [{ seq: seq!, slot: 1 }];
      assert.equal((await store.claim(refs, leases, Date.now())).length, 1);
      const ledger = new ClaimLedger();
      ledger.begin(refs);
      ledger.end(refs, refs);
      const pauses: number[] = [];
      const marks = new MarkQueue({
        store,
        logger: new TestLogger(),
        metrics: new EngineMetrics(),
        ledger,
        keepTrying: () => true,
        sleep: (ms) => {
          pauses.push(ms);
          return Promise.resolve();
        },
      });
      store.failNext('markDelivered', ...Array.from({ length: 40 }, () => 'before' as const));

      marks.add({ refs, leases, ackedAt: Date.now() }, false);
      await marks.settle();
      assert.equal(store.stateOf(seq!), 'delivered');
      assert.equal(store.callsOf('markDelivered').length, 41);
      assert.equal(pauses.length, 40);
      assert.ok(pauses.every((ms, k) => ms <= 5000 && ms >= (pauses[k - 1] ?? 0)));
      assert.equal(pauses.at(-1), 5000, 'the pause is capped');
      const waited = pauses.reduce((sum, ms) => sum + ms, 0);
      assert.ok(waited > 60_000, `would have kept trying for ${waited} ms`);
      assert.equal(ledger.accounts(seq!), false, 'settled once marked');
    });

    it('stops trying once it may not keep trying (a stop past its deadline)', async () => {
      const events = new Events();
      const store = new FakeStore(events, SLOTS);
      const [seq] = store.seed([message('abandoned-mark', Date.now() - 10, 1)]);
      const [lease] = await store.acquireSlots([1], 0);
      const leases = new Map([[1, lease!.epoch]]);
      const refs: MessageRef[] = [{ seq: seq!, slot: 1 }];
      await store.claim(refs, leases, Date.now());
      let tries = 0;
      const marks = new MarkQueue({
        store,
        logger: new TestLogger(),
        metrics: new EngineMetrics(),
        ledger: new ClaimLedger(),
        keepTrying: () => ++tries < 3,
        sleep: () => Promise.resolve(),
      });
      store.failNext('markDelivered', ...Array.from({ length: 10 }, () => 'before' as const));
      marks.add({ refs, leases, ackedAt: Date.now() }, false);
      await marks.settle();
      assert.equal(store.callsOf('markDelivered').length, 3);
      assert.equal(store.stateOf(seq!), 'delivering', 'left for the next owner to reset');
    });
  });

  describe('a failed claim racing a claim of the same message that succeeded', () => {
    it('releases nothing the other claim took: the message is delivered once', async () => {
      // Claims of one message each, two at a time: the message held twice goes to two claims.
      const h = await harness({ fireBatchSize: 1, fireConcurrency: 2 }, []);
      const openClaims = h.store.hold('claim');
      // The slots' load waits while an insert commits under the new epochs, so the insert wheels
      // the message and the load, reading afterwards, wheels it again.
      const openLoad = h.store.hold('loadDue');
      const acquiring = h.engine.acquireSlots(OWNED);
      await h.events.until(() => h.store.waitingAt('loadDue') === 1, 'the load, waiting');
      const [seq] = await h.insert([message('raced', Date.now() + 300, 5)]);
      openLoad();
      await acquiring;
      await h.events.until(() => h.store.waitingAt('claim') === 2, 'two claims of it, waiting');

      // The first claim commits and its reply is held; the second fails.
      h.store.failNext('claim', 'ok', 'before');
      const openReply = h.store.holdReply('claim');
      openClaims();
      await h.events.until(
        () =>
          h.store.replyWaitingAt('claim') === 1 &&
          h.store.callsOf('claim').some((call) => call.failed === 'before'),
        'one claim committed, the other failed',
      );
      assert.equal(h.store.stateOf(seq!), 'delivering');
      // The failed claim's recovery runs now, while the other claim's reply is still out.
      await nextTurn();
      assert.ok(
        h.logger.entries.some((entry) => entry.msg === 'claim failed; will retry'),
        'the failed claim was recovered',
      );
      openReply();

      await h.events.until(() => h.store.stateOf(seq!) === 'delivered', 'delivered');
      assert.ok(
        h.store.callsOf('releaseClaims').every((call) => !call.changed.includes(seq!)),
        'the recovery released the claim that succeeded',
      );
      const states = h.store.row(seq!).history.map((change) => change.state);
      assert.deepEqual(states, ['scheduled', 'delivering', 'delivered']);
      assert.deepEqual(
        h.store.callsOf('claim').map((call) => [call.failed, call.changed]),
        [
          [undefined, [seq]],
          ['before', []],
        ],
      );
      assertDeliveredOnce(h, ['raced']);
    });
  });
});
