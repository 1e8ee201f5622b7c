/**
 * How a fired batch is cut into produce requests (produceChunks in ../../src/delivery.ts): by
 * topic, then by bytes and count, so that one topic or one oversized request cannot fail the
 * others' messages.
 */
import assert from 'node:assert/strict';
import type { ClaimedMessage, OutboundRecord } from '@hourglass/core';
import { recordBytes } from '@hourglass/core';
import { KAFKA_TARGET, deliverToKafka, produceChunks } from '@hourglass/kafka';
import type { Producer } from 'kafkajs';

const MIB = 1 << 20;
const TOPICS = ['orders', 'audit', 'payments'];

/** `count` records of `valueBytes` each, round-robin over TOPICS; one shared buffer keeps memory flat. */
function records(count: number, valueBytes: number): OutboundRecord[] {
  const value = Buffer.alloc(valueBytes, 1);
  return Array.from({ length: count }, (_, n) => ({
    topic: TOPICS[n % TOPICS.length]!,
    key: `key-${n}`,
    value,
    headers: { 'hourglass-id': `id-${n}`, 'hourglass-app': 'app1' },
  }));
}

type Limits = Parameters<typeof produceChunks>[1];

/**
 * Every record in exactly one chunk, at its index, in its topic's chunk, in input order; every
 * chunk within the limits, or a single record that alone exceeds the byte limit.
 */
function checkChunks(
  input: readonly OutboundRecord[],
  limits: Limits,
): ReturnType<typeof produceChunks> {
  const chunks = produceChunks(input, limits);
  const seen = new Set<number>();
  for (const chunk of chunks) {
    assert.ok(chunk.records.length > 0, 'an empty chunk');
    assert.equal(chunk.indexes.length, chunk.records.length);
    assert.ok(chunk.records.length <= limits.maxRequestRecords, `${chunk.records.length} records`);
    const bytes = chunk.records.reduce((sum, record) => sum + recordBytes(record), 0);
    assert.ok(
      bytes <= limits.maxRequestBytes || chunk.records.length === 1,
      `a request of ${bytes} bytes with ${chunk.records.length} records`,
    );
    chunk.indexes.forEach((index, k) => {
      assert.ok(!seen.has(index), `record ${index} in two chunks`);
      seen.add(index);
      assert.equal(chunk.records[k], input[index], `record ${index} not at its index`);
      assert.equal(input[index]!.topic, chunk.topic, 'a record in the chunk of another topic');
      if (k > 0) assert.ok(index > chunk.indexes[k - 1]!, 'out of order within a chunk');
    });
  }
  assert.equal(seen.size, input.length, 'a record in no chunk');
  return chunks;
}

describe('produceChunks', () => {
  it('puts each 1 MiB record in a request of its own when one alone exceeds the byte limit', () => {
    const input = records(4000, MIB);
    const chunks = checkChunks(input, { maxRequestBytes: 1_000_000, maxRequestRecords: 1000 });
    assert.equal(chunks.length, 4000);
    chunks.forEach((chunk) => assert.equal(chunk.records.length, 1));
  });

  it('fills requests up to the byte limit, per topic', () => {
    const input = records(4000, MIB);
    const maxRequestBytes = 8 * MIB;
    const chunks = checkChunks(input, { maxRequestBytes, maxRequestRecords: 1000 });
    // Seven 1 MiB records and their overhead fit in 8 MiB, eight do not.
    const perRequest = Math.floor(maxRequestBytes / recordBytes(input[0]!));
    assert.equal(perRequest, 7);
    for (const topic of TOPICS) {
      const ofTopic = chunks.filter((chunk) => chunk.topic === topic);
      const total = input.filter((record) => record.topic === topic).length;
      assert.equal(ofTopic.length, Math.ceil(total / perRequest), topic);
      ofTopic
        .slice(0, -1)
        .forEach((chunk) => assert.equal(chunk.records.length, perRequest, topic));
    }
  });

  it('cuts requests at maxRequestRecords', () => {
    const input = records(4000, MIB);
    const chunks = checkChunks(input, { maxRequestBytes: 2 ** 40, maxRequestRecords: 500 });
    for (const topic of TOPICS) {
      const sizes = chunks.filter((chunk) => chunk.topic === topic).map((c) => c.records.length);
      const total = input.filter((record) => record.topic === topic).length;
      assert.deepEqual(sizes, [
        ...Array.from({ length: Math.floor(total / 500) }, () => 500),
        ...(total % 500 > 0 ? [total % 500] : []),
      ]);
    }
  });

  it('puts a small batch of one topic in one request, and nothing in none', () => {
    const input = records(10, 100).map((record) => ({ ...record, topic: 'only' }));
    const chunks = checkChunks(input, { maxRequestBytes: 1_000_000, maxRequestRecords: 1000 });
    assert.equal(chunks.length, 1);
    assert.deepEqual(
      chunks[0]!.indexes,
      Array.from({ length: 10 }, (_, n) => n),
    );
    assert.deepEqual(produceChunks([], { maxRequestBytes: 1, maxRequestRecords: 1 }), []);
  });
});

describe('deliverToKafka', () => {
  function claimed(n: number, topic: string): ClaimedMessage {
    return {
      seq: n,
      app: 'app1',
      id: `m-${n}`,
      slot: 0,
      topic,
      key: null,
      payload: Buffer.from(`p${n}`),
      headers: {},
      deliverAtMs: 0,
      attempts: 0,
    };
  }
  const limits = { maxRequestBytes: 1_000_000, maxRequestRecords: 1000, timeoutMs: 200 };

  /** A producer whose `send` answers per topic as `answer` says. */
  function producer(answer: (topic: string) => Promise<unknown>): () => Promise<Producer> {
    const fake = { send: ({ topic }: { topic: string }) => answer(topic) };
    return () => Promise.resolve(fake as unknown as Producer);
  }

  it('answers each topic on its own: a missing topic fails only its messages, as a refusal', async () => {
    const unknownTopic = Object.assign(
      new Error('This server does not host this topic-partition'),
      {
        name: 'KafkaJSProtocolError',
        retriable: true,
      },
    );
    const outcomes = await deliverToKafka(
      producer((topic) =>
        topic === 'missing' ? Promise.reject(unknownTopic) : Promise.resolve([]),
      ),
      [claimed(1, 'orders'), claimed(2, 'missing'), claimed(3, 'orders')],
      limits,
    );
    assert.deepEqual(
      outcomes.map((o) => [o.kind, o.kind === 'failed' ? o.retriable : null]),
      [
        ['delivered', null],
        ['failed', false],
        ['delivered', null],
      ],
    );
    assert.ok(outcomes.every((o) => o.target === KAFKA_TARGET));
  });

  it('bounds a produce that is never answered: a retriable failure after the timeout', async () => {
    const started = Date.now();
    const outcomes = await deliverToKafka(
      producer(() => new Promise(() => undefined)),
      [claimed(1, 'orders')],
      limits,
    );
    assert.equal(outcomes[0]?.kind, 'failed');
    assert.equal(outcomes[0]?.kind === 'failed' && outcomes[0].retriable, true);
    assert.ok(Date.now() - started >= limits.timeoutMs);
  });

  it('answers a retriable failure for every message when the broker cannot be reached', async () => {
    const outcomes = await deliverToKafka(
      () =>
        Promise.reject(
          Object.assign(new Error('Connection error: ECONNREFUSED'), {
            name: 'KafkaJSConnectionError',
          }),
        ),
      [claimed(1, 'orders'), claimed(2, 'audit')],
      limits,
    );
    assert.deepEqual(
      outcomes.map((o) => o.kind === 'failed' && o.retriable),
      [true, true],
    );
  });
});
