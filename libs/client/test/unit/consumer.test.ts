import assert from 'node:assert/strict';
import type { KafkaRecord, KafkaRecordContext } from '../../src';
import { InvalidDeliveryError, RecentIds, decodeDelivery, handleDeliveries } from '../../src';

function record(id: string, overrides: Partial<KafkaRecord> = {}, app = 'shop'): KafkaRecord {
  return {
    key: Buffer.from('order-1'),
    value: Buffer.from('{"orderId":1}'),
    timestamp: '1900000000250',
    headers: {
      'hourglass-id': Buffer.from(id),
      'hourglass-app': Buffer.from(app),
      'hourglass-deliver-at': Buffer.from('1900000000000'),
      'x-trace': Buffer.from('t-1'),
      tenant: 'acme',
    },
    offset: '42',
    ...overrides,
  };
}

describe('decodeDelivery', () => {
  it('turns a kafkajs record into a delivery', () => {
    const delivery = decodeDelivery(record('m-1'), 'orders.timeouts');
    assert.equal(delivery.id, 'm-1');
    assert.equal(delivery.app, 'shop');
    assert.equal(delivery.topic, 'orders.timeouts');
    assert.equal(delivery.key, 'order-1');
    assert.equal(delivery.deliverAt.getTime(), 1_900_000_000_000);
    assert.equal(delivery.firedAt.getTime(), 1_900_000_000_250);
    assert.deepEqual(delivery.payload, Buffer.from('{"orderId":1}'));
    assert.deepEqual(delivery.json<{ orderId: number }>(), { orderId: 1 });
  });

  it('strips the hourglass-* headers (any case) and decodes the rest as UTF-8', () => {
    const delivery = decodeDelivery(
      record('m-2', {
        headers: { ...record('m-2').headers, 'Hourglass-Extra': 'x', 'x-ü': Buffer.from('ü') },
      }),
    );
    assert.deepEqual(delivery.headers, { 'x-trace': 't-1', tenant: 'acme', 'x-ü': 'ü' });
  });

  it('takes the last value of a repeated header, and handles null keys and values', () => {
    const delivery = decodeDelivery(
      record('m-3', {
        key: null,
        value: null,
        headers: { ...record('m-3').headers, 'x-trace': [Buffer.from('a'), Buffer.from('b')] },
      }),
    );
    assert.equal(delivery.headers['x-trace'], 'b');
    assert.equal(delivery.key, null);
    assert.equal(delivery.payload.length, 0);
    assert.equal(delivery.topic, undefined);
  });

  it('refuses a record that Hourglass did not produce', () => {
    assert.throws(
      () => decodeDelivery(record('m-4', { headers: { 'x-trace': 'x' } })),
      InvalidDeliveryError,
    );
    assert.throws(
      () =>
        decodeDelivery(
          record('m-5', {
            headers: { 'hourglass-id': 'a', 'hourglass-app': 'b', 'hourglass-deliver-at': 'soon' },
          }),
        ),
      /hourglass-deliver-at/,
    );
  });
});

describe('RecentIds', () => {
  it('forgets the least recently seen id first and never holds more than its capacity', () => {
    const recent = new RecentIds(3);
    for (const id of ['a', 'b', 'c']) recent.add('app', id);
    assert.ok(recent.has('app', 'a')); // a is now the most recent
    recent.add('app', 'd'); // evicts b
    assert.equal(recent.size, 3);
    assert.equal(recent.has('app', 'b'), false);
    assert.ok(recent.has('app', 'a') && recent.has('app', 'c') && recent.has('app', 'd'));
    for (let i = 0; i < 1000; i++) recent.add('app', `x${i}`);
    assert.equal(recent.size, 3);
  });

  it('keeps apps apart: ids are unique per app only', () => {
    const recent = new RecentIds(10);
    recent.add('shop', 'order-1');
    assert.equal(recent.has('billing', 'order-1'), false);
    assert.equal(recent.has('shop', 'order-1'), true);
  });

  it('defaults to 100k ids and rejects a useless capacity', () => {
    assert.equal(new RecentIds().capacity, 100_000);
    assert.throws(() => new RecentIds(0), RangeError);
  });
});

describe('handleDeliveries', () => {
  const context = (id: string, app = 'shop'): KafkaRecordContext => ({
    topic: 't',
    partition: 0,
    message: record(id, {}, app),
  });

  it('drops duplicates with dedupe on, and only then', async () => {
    const seen: string[] = [];
    const duplicates: string[] = [];
    const handler = handleDeliveries((delivery) => void seen.push(delivery.id), {
      dedupe: true,
      onDuplicate: (d) => duplicates.push(d.id),
    });
    for (const id of ['a', 'b', 'a', 'c', 'b']) await handler(context(id));
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.deepEqual(duplicates, ['a', 'b']);
    const all: string[] = [];
    const plain = handleDeliveries((delivery) => void all.push(delivery.id));
    for (const id of ['a', 'a']) await plain(context(id));
    assert.deepEqual(all, ['a', 'a']);
  });

  it('remembers an id only after the handler succeeded, so a redelivery after a failure is handled', async () => {
    let calls = 0;
    const handler = handleDeliveries(
      () => {
        calls++;
        if (calls === 1) throw new Error('downstream failed');
      },
      { dedupe: new RecentIds(10) },
    );
    await assert.rejects(handler(context('a')), /downstream failed/);
    await handler(context('a'));
    await handler(context('a'));
    assert.equal(calls, 2);
  });

  it('skips records without Hourglass headers, reporting them', async () => {
    const invalid: string[] = [];
    const handler = handleDeliveries(() => assert.fail('called'), {
      onInvalid: (_error, ctx) => invalid.push(ctx.message.offset ?? ''),
    });
    await handler({
      topic: 't',
      partition: 0,
      message: { value: Buffer.from('x'), timestamp: '0', offset: '7' },
    });
    assert.deepEqual(invalid, ['7']);
  });
});
