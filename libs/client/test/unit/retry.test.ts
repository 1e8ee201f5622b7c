import assert from 'node:assert/strict';
import { HourglassClientError } from '../../src';
import type { RetryPolicy } from '../../src/retry';
import { backoffMs, retryDelayMs } from '../../src/retry';

const policy: RetryPolicy = {
  retries: 4,
  initialBackoffMs: 100,
  maxBackoffMs: 1000,
  maxRetryAfterMs: 30_000,
};
const error = (
  init: Partial<ConstructorParameters<typeof HourglassClientError>[0]>,
): HourglassClientError =>
  new HourglassClientError({
    code: 'unavailable',
    message: 'x',
    transport: 'http',
    retriable: true,
    ...init,
  });

describe('retry backoff', () => {
  it('doubles the cap per retry up to the maximum (random = 1 - ε gives the cap)', () => {
    const top = (): number => 0.999999;
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 40].map((retry) => backoffMs(retry, policy, top)),
      [99, 199, 399, 799, 999, 999, 999],
    );
  });

  it('is uniformly spread below the cap (full jitter), never negative', () => {
    assert.equal(
      backoffMs(3, policy, () => 0),
      0,
    );
    assert.equal(
      backoffMs(3, policy, () => 0.5),
      400,
    );
    const samples = Array.from({ length: 2000 }, () => backoffMs(2, policy, Math.random));
    assert.ok(samples.every((ms) => ms >= 0 && ms < 400));
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    assert.ok(mean > 170 && mean < 230, `mean ${mean} is not about 200`);
  });

  it('retries retriable errors until the retries are used up', () => {
    const unavailable = error({ status: 503 });
    assert.equal(typeof retryDelayMs(unavailable, 0, policy, Math.random), 'number');
    assert.equal(typeof retryDelayMs(unavailable, 3, policy, Math.random), 'number');
    assert.equal(retryDelayMs(unavailable, 4, policy, Math.random), undefined);
    assert.equal(retryDelayMs(unavailable, 0, { ...policy, retries: 0 }, Math.random), undefined);
  });

  it('never retries what is not retriable (every 4xx but 429)', () => {
    for (const [code, status] of [
      ['invalid_request', 400],
      ['unauthenticated', 401],
      ['topic_not_allowed', 403],
      ['not_found', 404],
      ['id_conflict', 409],
      ['internal', 500],
    ] as const) {
      assert.equal(
        retryDelayMs(error({ code, status, retriable: false }), 0, policy, Math.random),
        undefined,
        code,
      );
    }
  });

  it("waits the server's Retry-After for 429, without jitter, and gives up when it is too long", () => {
    const limited = error({ code: 'rate_limited', status: 429, retryAfterMs: 2000 });
    assert.equal(
      retryDelayMs(limited, 0, policy, () => 0),
      2000,
    );
    assert.equal(
      retryDelayMs(
        error({ code: 'rate_limited', status: 429, retryAfterMs: 120_000 }),
        0,
        policy,
        () => 0,
      ),
      undefined,
    );
  });
});
