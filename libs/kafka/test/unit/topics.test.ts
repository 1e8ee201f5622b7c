import assert from 'node:assert/strict';
import { HourglassError } from '@hourglass/core';
import { checkTopicSettings, createTopicsRefusal } from '../../src/topics';

/** kafkajs' shape of a createTopics refusal: an aggregate of per-topic protocol errors. */
function aggregate(...parts: Array<{ type: string; topic?: string }>): Error {
  return Object.assign(new Error('Topic creation errors'), {
    name: 'KafkaJSAggregateError',
    errors: parts.map((part) =>
      Object.assign(new Error(`${part.type} message`), {
        name: 'KafkaJSCreateTopicError',
        ...part,
      }),
    ),
  });
}

describe('topic creation: what is the request and what is Kafka', () => {
  it('refuses bad names and numbers before Kafka is asked, naming the field', () => {
    const fields = (topics: string[], settings: Record<string, number>): string[] => {
      try {
        checkTopicSettings(topics, settings);
        return [];
      } catch (error) {
        assert.ok(error instanceof HourglassError);
        assert.equal(error.code, 'invalid_request');
        return (error.details ?? []).map((d) => d.path);
      }
    };
    assert.deepEqual(fields(['ok.topic'], { partitions: 3, replicationFactor: 1 }), []);
    assert.deepEqual(fields(['.'], {}), ['topic']);
    assert.deepEqual(fields(['..', 'a b'], {}), ['topic', 'topic']);
    assert.deepEqual(fields(['t'], { partitions: 0 }), ['partitions']);
    assert.deepEqual(fields(['t'], { replicationFactor: 0 }), ['replicationFactor']);
    assert.deepEqual(fields(['t'], { replicationFactor: 1.5 }), ['replicationFactor']);
  });

  it("maps Kafka's refusals of the settings to invalid_request and leaves the rest to 503", () => {
    for (const [type, path] of [
      ['INVALID_REPLICATION_FACTOR', 'replicationFactor'],
      ['INVALID_PARTITIONS', 'partitions'],
      ['INVALID_TOPIC_EXCEPTION', 'topic'],
      ['POLICY_VIOLATION', 'topic'],
    ] as const) {
      const refusal = createTopicsRefusal(aggregate({ type, topic: 't' }));
      assert.equal(refusal?.code, 'invalid_request', type);
      assert.deepEqual(
        refusal?.details?.map((d) => d.path),
        [path],
      );
    }
    // A protocol error on its own (not aggregated) is read the same way.
    const single = Object.assign(new Error('x'), { type: 'INVALID_PARTITIONS' });
    assert.equal(createTopicsRefusal(single)?.code, 'invalid_request');
    // Already existing (a race with another creator) is not a refusal; connection trouble is not
    // the request's fault.
    assert.equal(createTopicsRefusal(aggregate({ type: 'TOPIC_ALREADY_EXISTS' })), undefined);
    assert.equal(createTopicsRefusal(new Error('Connection timeout')), undefined);
    assert.equal(
      createTopicsRefusal(aggregate({ type: 'INVALID_PARTITIONS' }, { type: 'NOT_CONTROLLER' })),
      undefined,
    );
  });
});
