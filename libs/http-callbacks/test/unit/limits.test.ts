/**
 * KeyedLimits (../../src/limits.ts): permits per key, first come first served, a bounded queue,
 * bounded waiting, and no state left behind for keys no longer in use.
 */
import assert from 'node:assert/strict';
import { CallFailure } from '../../src/errors';
import { KeyedLimits } from '../../src/limits';
import type { Release } from '../../src/limits';

function limits(limit: number, maxQueued: number): KeyedLimits {
  return new KeyedLimits({
    limit,
    maxQueued,
    messages: {
      queueFull: (key) => `full: ${key}`,
      waitedTooLong: (key, ms) => `waited ${ms} ms: ${key}`,
    },
  });
}

async function failureOf(promise: Promise<unknown>): Promise<CallFailure> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof CallFailure);
    return error;
  }
  assert.fail('expected a CallFailure');
}

describe('KeyedLimits', () => {
  it('grants up to the limit at once and serves waiters in arrival order', async () => {
    const bounded = limits(2, 10);
    const first = await bounded.acquire('a', 1000);
    const second = await bounded.acquire('a', 1000);
    const order: number[] = [];
    const waiting = [3, 4, 5].map((n) =>
      bounded.acquire('a', 1000).then((release) => {
        order.push(n);
        return release;
      }),
    );
    assert.deepEqual(bounded.usage('a'), { held: 2, queued: 3 });

    first();
    const third = await waiting[0]!;
    second();
    third();
    const rest = await Promise.all(waiting.slice(1));
    assert.deepEqual(order, [3, 4, 5]);
    rest.forEach((release) => release());
    assert.deepEqual(bounded.usage('a'), { held: 0, queued: 0 });
  });

  it('keeps keys apart', async () => {
    const bounded = limits(1, 10);
    const a = await bounded.acquire('a', 1000);
    const b = await bounded.acquire('b', 1000);
    assert.deepEqual(bounded.usage('a'), { held: 1, queued: 0 });
    assert.deepEqual(bounded.usage('b'), { held: 1, queued: 0 });
    a();
    b();
  });

  it('fails at once when the queue is full', async () => {
    const bounded = limits(1, 1);
    const held = await bounded.acquire('a', 1000);
    const queued = bounded.acquire('a', 1000);
    const failure = await failureOf(bounded.acquire('a', 1000));
    assert.equal(failure.code, 'QUEUE_FULL');
    assert.equal(failure.message, 'full: a');
    held();
    (await queued)();
  });

  it('fails a waiter after its wait limit and forgets it', async () => {
    const bounded = limits(1, 10);
    const held = await bounded.acquire('a', 1000);
    const failure = await failureOf(bounded.acquire('a', 20));
    assert.equal(failure.code, 'QUEUE_TIMEOUT');
    assert.equal(failure.message, 'waited 20 ms: a');
    assert.deepEqual(bounded.usage('a'), { held: 1, queued: 0 });
    held();
    assert.deepEqual(bounded.usage('a'), { held: 0, queued: 0 });
  });

  it('ignores a second release of the same permit', async () => {
    const bounded = limits(1, 10);
    const held: Release = await bounded.acquire('a', 1000);
    const next = bounded.acquire('a', 1000);
    held();
    held();
    const second = await next;
    assert.deepEqual(bounded.usage('a'), { held: 1, queued: 0 });
    second();
  });

  it('fails every waiter on failWaiting, leaving held permits valid', async () => {
    const bounded = limits(1, 10);
    const held = await bounded.acquire('a', 1000);
    const waiters = [bounded.acquire('a', 1000), bounded.acquire('a', 1000)];
    bounded.failWaiting(new CallFailure('STOPPED', 'stopped'));
    const failures = await Promise.all(waiters.map(failureOf));
    assert.deepEqual(
      failures.map((failure) => failure.code),
      ['STOPPED', 'STOPPED'],
    );
    assert.deepEqual(bounded.usage('a'), { held: 1, queued: 0 });
    held();
    assert.deepEqual(bounded.usage('a'), { held: 0, queued: 0 });
  });
});
