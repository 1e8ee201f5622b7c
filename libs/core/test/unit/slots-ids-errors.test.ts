import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ERROR_TABLE,
  GrpcStatus,
  HourglassError,
  allSlots,
  fnv1a32,
  messageKey,
  slotOf,
  uuidv7,
} from '@hourglass/core';

describe('slots', () => {
  it('hashes with FNV-1a 32 (reference vectors)', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  });

  it('is stable and in range for any app and id', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.integer({ min: 1, max: 4096 }), (app, id, count) => {
        const slot = slotOf(app, id, count);
        assert.ok(Number.isInteger(slot) && slot >= 0 && slot < count);
        assert.equal(slotOf(app, id, count), slot);
      }),
    );
  });

  it('is FNV-1a of "app NUL id" (every node and SDK must agree), whatever the characters', () => {
    assert.equal(slotOf('shop', 'order-1', 1 << 30), fnv1a32('shop\u0000order-1') % (1 << 30));
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }),
        fc.string({ unit: 'binary' }),
        fc.integer({ min: 1, max: 2 ** 32 }),
        (app, id, count) => {
          assert.equal(slotOf(app, id, count), fnv1a32(messageKey(app, id)) % count);
        },
      ),
    );
  });

  it('separates apps: the same id in two apps is two keys', () => {
    assert.notEqual(slotOf('a', 'bc', 1 << 30), slotOf('ab', 'c', 1 << 30));
  });

  it('spreads ids evenly over 256 slots', () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 256_000; i++) counts[slotOf('app', `order-${i}`, 256)]!++;
    assert.ok(
      Math.min(...counts) > 800 && Math.max(...counts) < 1200,
      `${Math.min(...counts)}..${Math.max(...counts)}`,
    );
    assert.deepEqual(allSlots(3), [0, 1, 2]);
  });
});

describe('uuidv7', () => {
  it('encodes the milliseconds first, with version 7 and the RFC variant, sorting by time', () => {
    const zeros = (n: number) => new Uint8Array(n);
    const id = uuidv7(0x0123456789ab, zeros);
    assert.equal(id, '01234567-89ab-7000-8000-000000000000');
    const a = uuidv7(1000, (n) => new Uint8Array(n).fill(255));
    const b = uuidv7(1001, zeros);
    assert.ok(a < b);
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('errors', () => {
  it('maps every code to an HTTP status and a gRPC status, consistently', () => {
    for (const [code, spec] of Object.entries(ERROR_TABLE)) {
      assert.ok(spec.http >= 400 && spec.http < 600, code);
      assert.ok(Object.values(GrpcStatus).includes(spec.grpc), code);
      if (spec.http === 503) assert.equal(spec.grpc, GrpcStatus.UNAVAILABLE, code);
      if (spec.http >= 400 && spec.http < 500 && spec.http !== 429)
        assert.equal(spec.retriable, false, code);
    }
  });

  it('renders the one error body shape', () => {
    const error = new HourglassError('invalid_request', 'bad', [
      { path: 'topic', message: 'required' },
    ]);
    assert.deepEqual(error.toBody(), {
      error: {
        code: 'invalid_request',
        message: 'bad',
        details: [{ path: 'topic', message: 'required' }],
      },
    });
    assert.deepEqual(new HourglassError('not_found', 'gone').toBody(), {
      error: { code: 'not_found', message: 'gone' },
    });
    assert.equal(new HourglassError('unavailable', 'x').spec.http, 503);
  });
});
