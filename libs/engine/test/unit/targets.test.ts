/**
 * Messages with a target list in the engine (HTTP callbacks and fan-out), against the fakes:
 * per-target retries written to the store and brought back by the wheel, outages that do not
 * count, settling that survives a store failure without sending again, and a receiver that
 * hangs holding back nobody else.
 */
import assert from 'node:assert/strict';
import type { NewMessage, RetryStrategy, TargetSpec } from '@hourglass/core';
import { INITIAL_TARGET_STATE, PublishError } from '@hourglass/core';
import { Events, FakeHttpCaller } from './fakes';
import { APP, TOPIC, harness, message } from './harness';

const NO_JITTER: RetryStrategy = {
  strategy: 'fixed',
  initialDelayMs: 50,
  maxDelayMs: 1000,
  maxAttempts: 3,
  jitter: false,
};

function withTargets(
  id: string,
  deliverAtMs: number,
  targets: TargetSpec[],
  retry: RetryStrategy = NO_JITTER,
  slot = 0,
): NewMessage {
  return { ...message(id, deliverAtMs, slot), topic: '', targets, retry, contentType: null };
}

const http = (url: string): TargetSpec => ({
  type: 'http',
  url,
  method: 'POST',
  headers: {},
  timeoutMs: 1000,
  name: null,
  envelope: false,
  expectBody: null,
});

describe('engine: messages with targets', () => {
  it('retries a failing callback by its strategy, each retry from the store at its time, then fails', async () => {
    const events = new Events();
    const caller = new FakeHttpCaller(events, () => ({ ok: false, status: 503 }));
    const engine = await harness({}, [0], { http: caller, events });
    const [seq] = await engine.insert([
      withTargets('cb-1', Date.now(), [http('http://a.example/')]),
    ]);
    await engine.events.until(
      () => engine.store.rows.get(seq!)?.state === 'failed',
      'the message failed',
      5000,
    );
    const calls = caller.callsTo('http://a.example/');
    assert.equal(calls.length, 3);
    for (let i = 1; i < calls.length; i++)
      assert.ok(
        calls[i]!.at - calls[i - 1]!.at >= 50,
        `retry ${i} came after ${calls[i]!.at - calls[i - 1]!.at} ms`,
      );
    assert.deepEqual(
      calls.map((call) => call.request.headers['hourglass-attempt']),
      ['1', '2', '3'],
    );
    const row = engine.store.rows.get(seq!)!;
    assert.equal(row.targetStates?.[0]?.status, 'failed');
    assert.equal(row.targetStates?.[0]?.attempts, 3);
    assert.equal(engine.store.attemptLog.get(seq!)?.length, 3);
    assert.equal(row.attempts, 3);
  });

  it('a Kafka outage in a fan-out is not counted; the delivered callback is not sent again', async () => {
    const events = new Events();
    const caller = new FakeHttpCaller(events);
    const h = await harness({ probeMaxMs: 50 }, [0], { http: caller, events });
    h.publisher.failNext(
      new PublishError('broker not available', true),
      new PublishError('broker not available', true),
    );
    const [seq] = await h.insert([
      withTargets('fan-1', Date.now(), [
        { type: 'kafka', topic: TOPIC, key: null, headers: {} },
        http('http://b.example/'),
      ]),
    ]);
    await h.events.until(
      () => h.store.rows.get(seq!)?.state === 'delivered',
      'the fan-out was delivered',
      5000,
    );
    const row = h.store.rows.get(seq!)!;
    assert.deepEqual(
      row.targetStates?.map((state) => [state.status, state.attempts]),
      [
        ['delivered', 1],
        ['delivered', 1],
      ],
    );
    assert.equal(caller.callsTo('http://b.example/').length, 1);
    assert.ok(h.publisher.attempts.length >= 3, 'Kafka was tried again after the outage');
  });

  it('a settle the store refused is retried without sending the callback again', async () => {
    const events = new Events();
    const caller = new FakeHttpCaller(events);
    const h = await harness({}, [0], { http: caller, events });
    h.store.failNext('settleTargets', 'before', 'before');
    const [seq] = await h.insert([
      withTargets('settle-1', Date.now(), [http('http://c.example/')]),
    ]);
    await h.events.until(
      () => h.store.rows.get(seq!)?.state === 'delivered',
      'settled at last',
      5000,
    );
    assert.equal(caller.callsTo('http://c.example/').length, 1);
    assert.equal(h.store.rows.get(seq!)?.targetStates?.[0]?.status, 'delivered');
  });

  it('a receiver that hangs holds back only its own messages', async () => {
    const events = new Events();
    const caller = new FakeHttpCaller(events, (request) =>
      request.url === 'http://stuck.example/' ? 'hang' : {},
    );
    const h = await harness({}, [0, 1], { http: caller, events });
    const now = Date.now();
    const [stuck] = await h.insert([withTargets('stuck-1', now, [http('http://stuck.example/')])]);
    await h.events.until(
      () => caller.callsTo('http://stuck.example/').length === 1,
      'the stuck call was made',
    );
    const [quick] = await h.insert([
      withTargets('quick-1', Date.now() + 20, [http('http://quick.example/')], NO_JITTER, 1),
    ]);
    await h.events.until(
      () => h.store.rows.get(quick!)?.state === 'delivered',
      'the quick callback was delivered while the other hangs',
    );
    assert.equal(h.store.rows.get(stuck!)?.state, 'delivering');
    caller.releaseHung();
    await h.events.until(
      () => h.store.rows.get(stuck!)?.state === 'scheduled',
      'the timed-out call waits for its retry',
    );
    assert.equal(h.store.rows.get(stuck!)?.targetStates?.[0]?.attempts, 1);
  });

  it('410 Gone fails the target at once; a fresh message state starts pending', async () => {
    const events = new Events();
    const caller = new FakeHttpCaller(events, () => ({ ok: false, status: 410, gone: true }));
    const h = await harness({}, [0], { http: caller, events });
    const [seq] = await h.insert([withTargets('gone-1', Date.now(), [http('http://d.example/')])]);
    await h.events.until(() => h.store.rows.get(seq!)?.state === 'failed', 'failed at once');
    assert.equal(caller.calls.length, 1);
    assert.equal(INITIAL_TARGET_STATE.status, 'pending');
    assert.equal(h.store.rows.get(seq!)?.message.app, APP);
  });
});
